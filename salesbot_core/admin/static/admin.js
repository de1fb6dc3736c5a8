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

// The bot form's condition builder: the rows are sent to the server as they change, which
// answers with the condition they make, as text, and its problems (the same checks as a
// ruleset file's). In the builder's mode the text follows the rows and is read-only; in the
// text's mode the builder is switched off. Going back to the builder fills the rows from
// the text, when it can show it. Without JavaScript the radio buttons choose, on saving.
(function () {
  const box = document.querySelector("fieldset[data-check]");
  if (!box) {
    return;
  }
  const form = box.form || box.closest("form");
  const builder = document.getElementById("builder");
  const rows = document.getElementById("cond-rows");
  const area = document.getElementById("where");
  const out = document.getElementById("where-check");
  const add = document.getElementById("cond-add");
  let timer = null;
  function mode() {
    return form.querySelector("input[name=where_mode]:checked").value;
  }
  function addRow() {
    const row = rows.lastElementChild.cloneNode(true);
    for (const input of row.querySelectorAll("input")) {
      input.value = "";
    }
    row.querySelector("select").value = "eq";
    rows.appendChild(row);
    return row;
  }
  function fill(found) {
    while (rows.children.length < found.rows.length + 1) {
      addRow();
    }
    Array.from(rows.children).forEach(function (row, i) {
      const [field, op, value] = found.rows[i] || ["", "eq", ""];
      row.querySelector("[name=cond_field]").value = field;
      row.querySelector("[name=cond_op]").value = op;
      row.querySelector("[name=cond_value]").value = value;
    });
    form.elements.cond_join.value = found.join;
  }
  function show(builderMode) {
    area.readOnly = builderMode;
    for (const control of builder.querySelectorAll("input, select, button")) {
      control.disabled = !builderMode;
    }
  }
  async function check(asked) {
    const body = new URLSearchParams(new FormData(form));
    body.set("where_mode", asked);
    try {
      const response = await fetch(box.dataset.check, { method: "POST", body, credentials: "same-origin" });
      if (!response.ok || response.redirected) {
        return null;
      }
      const found = await response.json();
      // textContent and value: the server's answer is shown as text, never as HTML.
      out.textContent = found.problems.length ? found.problems.join("; ") : "The conditions are valid.";
      if (asked === "builder" && !found.problems.length) {
        area.value = found.where;
      }
      return found;
    } catch (error) {
      return null; // the check is a help: the form is checked again when it is saved
    }
  }
  function later() {
    clearTimeout(timer);
    timer = setTimeout(function () { check(mode()); }, 250);
  }
  add.hidden = false;
  add.addEventListener("click", function () {
    addRow().querySelector("input").focus();
  });
  builder.addEventListener("input", later);
  builder.addEventListener("change", later);
  area.addEventListener("input", later);
  for (const radio of form.querySelectorAll("input[name=where_mode]")) {
    radio.addEventListener("change", async function () {
      if (radio.value === "raw") {
        show(false);
        return;
      }
      const found = await check("raw");
      if (found && found.rows) {
        fill(found);
        show(true);
        check("builder");
      } else {
        form.elements.where_mode.value = "raw";
        out.textContent = (found && found.problems.length ? found.problems.join("; ") + ". " : "") +
          "The builder cannot show these conditions: edit them as text.";
      }
    });
  }
  show(mode() === "builder");
})();
