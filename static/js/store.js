// Store pages: selects marked data-autosubmit-sort submit their form when changed, so
// sorting works with one tap on a phone (the button stays for keyboard and no-JS users).
(function () {
  "use strict";
  document.querySelectorAll("select[data-autosubmit-sort]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
})();
