// Site-wide behaviour: theme toggle (stored per user), language auto-submit, mobile nav.
(function () {
  "use strict";
  const ORDER = ["system", "light", "dark"];

  function csrfToken() {
    const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  window.AgentStore = window.AgentStore || {};
  window.AgentStore.csrfToken = csrfToken;

  const toggle = document.querySelector("[data-theme-toggle]");
  if (toggle) {
    toggle.addEventListener("click", function () {
      const root = document.documentElement;
      const current = root.getAttribute("data-theme") || "system";
      const next = ORDER[(ORDER.indexOf(current) + 1) % ORDER.length];
      root.setAttribute("data-theme", next);
      const label = toggle.querySelector("[data-theme-label]");
      if (label) label.textContent = toggle.getAttribute("data-label-" + next) || next;
      document.cookie = "theme=" + next + "; path=/; max-age=31536000; samesite=lax";
      const url = toggle.getAttribute("data-save-url");
      if (url) {
        fetch(url, {
          method: "PATCH", credentials: "same-origin",
          headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken()},
          body: JSON.stringify({theme: next}),
        }).catch(function () { /* the cookie still remembers it */ });
      }
    });
  }
  document.querySelectorAll("select[data-autosubmit]").forEach(function (el) {
    el.addEventListener("change", function () { el.form.submit(); });
  });
  const navToggle = document.querySelector("[data-nav-toggle]");
  if (navToggle) {
    navToggle.addEventListener("click", function () {
      const nav = document.getElementById("main-nav");
      const open = nav.classList.toggle("open");
      navToggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }
})();
