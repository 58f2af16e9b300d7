// Site-wide behaviour: theme toggle (stored per user, cookie for visitors), language
// auto-submit, mobile menu, copy buttons. Plain JS, no build step.
(function () {
  "use strict";
  var THEMES = ["system", "light", "dark"];

  function csrfToken() {
    var m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (m) return decodeURIComponent(m[1]);
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }
  window.AgentStore = window.AgentStore || {};
  window.AgentStore.csrfToken = csrfToken;

  // Theme: the server renders data-theme on <html>, so this only handles changes.
  var toggle = document.querySelector("[data-theme-toggle]");
  function applyTheme(theme) {
    document.documentElement.setAttribute("data-theme", theme);
    var label = toggle && toggle.querySelector("[data-theme-label]");
    if (label) label.textContent = toggle.getAttribute("data-label-" + theme) || theme;
    document.cookie = "theme=" + theme + "; path=/; max-age=31536000; samesite=lax";
  }
  if (toggle) {
    toggle.addEventListener("click", function () {
      var current = document.documentElement.getAttribute("data-theme") || "system";
      var next = THEMES[(THEMES.indexOf(current) + 1) % THEMES.length];
      applyTheme(next);
      var url = toggle.getAttribute("data-save-url");
      if (!url) return;
      toggle.setAttribute("aria-busy", "true");
      fetch(url, {
        method: "PATCH",
        credentials: "same-origin",
        headers: {"Content-Type": "application/json", "Accept": "application/json",
                  "X-CSRFToken": csrfToken()},
        body: JSON.stringify({theme: next}),
      }).catch(function () { /* offline: the cookie still remembers it for now */ })
        .then(function () { toggle.removeAttribute("aria-busy"); });
    });
  }

  document.querySelectorAll("select[data-autosubmit]").forEach(function (el) {
    el.addEventListener("change", function () { el.form.submit(); });
  });

  // Mobile menu.
  var navToggle = document.querySelector("[data-nav-toggle]");
  if (navToggle) {
    var menu = document.getElementById(navToggle.getAttribute("aria-controls"));
    var setOpen = function (open) {
      menu.classList.toggle("open", open);
      navToggle.setAttribute("aria-expanded", open ? "true" : "false");
    };
    navToggle.addEventListener("click", function () {
      setOpen(!menu.classList.contains("open"));
    });
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && menu.classList.contains("open")) {
        setOpen(false);
        navToggle.focus();
      }
    });
  }

  // Copy buttons: <button data-copy-target="input-id" data-copied-label="Copied">.
  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy-target"));
      if (!source) return;
      var text = source.value || source.textContent;
      var done = function () {
        var original = button.getAttribute("data-label") || button.textContent;
        button.setAttribute("data-label", original);
        button.textContent = button.getAttribute("data-copied-label") || original;
        setTimeout(function () { button.textContent = original; }, 2000);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () {
          source.select(); document.execCommand("copy"); done();
        });
      } else {
        source.select();
        document.execCommand("copy");
        done();
      }
    });
  });
  document.querySelectorAll("[data-copy-source]").forEach(function (input) {
    input.addEventListener("focus", function () { input.select(); });
  });
})();
