// The admin page's only script (the Content-Security-Policy allows no inline script).
// The live decisions list reloads its rows from the server every few seconds; without
// JavaScript, the page's "refresh now" link does the same.
"use strict";
(function () {
  const body = document.querySelector("tbody[data-src]");
  if (!body) {
    return;
  }
  const seconds = Number(body.dataset.seconds) || 3;
  async function refresh() {
    try {
      const response = await fetch(body.dataset.src, { credentials: "same-origin" });
      // A session that ended is sent to sign in: the rows stay as they were.
      if (response.ok && !response.redirected) {
        // The rows are the server's own escaped HTML fragment (outcome_rows.html).
        body.innerHTML = await response.text();
      }
    } catch (error) {
      // A failed poll is retried at the next tick.
    }
  }
  setInterval(refresh, seconds * 1000);
})();
