// Developer portal: confirmation of destructive actions and the "Advanced: JSON" editor
// (syntax check as you type; once the JSON changes it wins over the fields above).
(function () {
  "use strict";
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });

  const form = document.querySelector("[data-version-form]");
  if (!form) return;
  const textarea = form.querySelector("textarea[name=config_json]");
  const original = form.querySelector("input[name=config_json_original]");
  const status = form.querySelector("[data-json-status]");
  if (!textarea || !original) return;
  const messages = {
    edited: textarea.getAttribute("data-msg-edited") || "The JSON has changed: it will be saved, and the fields above are ignored.",
    invalid: textarea.getAttribute("data-msg-invalid") || "Not valid JSON yet:",
  };

  function update() {
    const edited = textarea.value.trim() !== original.value.trim();
    form.querySelectorAll("[data-config-fields]").forEach(function (fieldset) {
      fieldset.disabled = edited;
    });
    let problem = "";
    if (edited) {
      try { JSON.parse(textarea.value); } catch (error) { problem = messages.invalid + " " + error.message; }
    }
    textarea.setAttribute("aria-invalid", problem ? "true" : "false");
    if (status) status.textContent = problem || (edited ? messages.edited : "");
  }
  textarea.addEventListener("input", update);
  update();
})();
