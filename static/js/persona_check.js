// Persona check panel (templates/portal/_persona_check.html): while a check is pending or
// running (data-active), reload the panel from its data-url every few seconds, so progress
// and scores appear without reloading the page (and without losing unsaved draft edits).
(function () {
  "use strict";
  const INTERVAL_MS = 2500;
  const MAX_POLLS = 480; // ~20 minutes; the "Refresh" link still works after that

  function schedule(polls) {
    const panel = document.querySelector("[data-persona-check][data-active]");
    if (!panel || polls >= MAX_POLLS) return;
    window.setTimeout(function () {
      fetch(panel.getAttribute("data-url"), {
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch" },
      })
        .then(function (response) {
          if (!response.ok) throw new Error(String(response.status));
          return response.text();
        })
        .then(function (html) {
          const holder = document.createElement("div");
          holder.innerHTML = html.trim();
          const fresh = holder.querySelector("[data-persona-check]");
          if (!fresh) return;
          // Keep what the developer typed in the prompts box.
          const typed = panel.querySelector("textarea[name=prompts]");
          const box = fresh.querySelector("textarea[name=prompts]");
          if (typed && box) box.value = typed.value;
          panel.replaceWith(fresh);
          schedule(polls + 1);
        })
        .catch(function () {
          schedule(polls + 4); // back off on errors
        });
    }, INTERVAL_MS);
  }

  schedule(0);
})();
