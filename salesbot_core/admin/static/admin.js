// The admin page's only script (the Content-Security-Policy allows no inline script).
// The live decisions list reloads its rows from the server every few seconds, until its
// Pause button is pressed; without JavaScript, the page's "refresh now" link does the
// same. Older decisions (a page with ?before=) have no data-src: they never refresh. The bot form previews its
// tag, wall note and notification as they are typed, rendered by the server (its
// "Preview the texts" button does the same without JavaScript).
"use strict";
(function () {
  const body = document.querySelector("tbody[data-src]");
  if (!body) {
    return;
  }
  const seconds = Number(body.dataset.seconds) || 3;
  const pause = document.getElementById("live-pause");
  let paused = false;
  if (pause) {
    pause.hidden = false;
    pause.addEventListener("click", function () {
      paused = !paused;
      pause.setAttribute("aria-pressed", String(paused));
      pause.textContent = paused ? "Resume" : "Pause";
    });
  }
  async function refresh() {
    if (paused) {
      return;
    }
    try {
      const response = await fetch(body.dataset.src, { credentials: "same-origin" });
      // A session that ended is sent to sign in: the rows stay as they were.
      if (response.ok && !response.redirected && !paused) {
        // The rows are the server's own escaped HTML fragment (outcome_rows.html).
        body.innerHTML = await response.text();
      }
    } catch (error) {
      // A failed poll is retried at the next tick.
    }
  }
  setInterval(refresh, seconds * 1000);
})();

(function () {
  const form = document.querySelector("form[data-preview]");
  if (!form) {
    return;
  }
  const timers = {};
  async function preview(area) {
    const checked = form.querySelector("input[name=users]:checked");
    const id = form.querySelector("#id");
    const body = new URLSearchParams({
      csrf: form.elements.csrf.value,
      text: area.value,
      bot: id ? (id.value || id.textContent) : "",
      name: form.elements.name.value,
      entity: form.elements.entity.value,
      owner: checked ? checked.value : "",
    });
    const out = document.getElementById(area.id + "-preview");
    try {
      const response = await fetch(form.dataset.preview, { method: "POST", body, credentials: "same-origin" });
      if (response.ok && !response.redirected) {
        const shown = await response.json();
        // textContent: the rendered text is shown as text, never as HTML.
        out.textContent = shown.text !== null ? shown.text : shown.problems.join("; ");
      }
    } catch (error) {
      // The preview is a help: a failed one leaves the last.
    }
  }
  for (const area of form.querySelectorAll("[data-preview-of]")) {
    area.addEventListener("input", function () {
      clearTimeout(timers[area.id]);
      timers[area.id] = setTimeout(function () { preview(area); }, 250);
    });
  }
})();
