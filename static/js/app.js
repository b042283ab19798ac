// Site-wide behaviour (no inline script: the CSP allows our own files only).
// 1. The menu button shows and hides the navigation on narrow screens.
// 2. Forms with data-confirm ask before a destructive action (revoke, archive, remove).
(function () {
  document.documentElement.classList.add("js");
  var toggle = document.querySelector("[data-menu-toggle]");
  if (toggle) {
    var target = document.getElementById(toggle.getAttribute("aria-controls"));
    toggle.addEventListener("click", function () {
      var open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      if (target) target.classList.toggle("open", open);
    });
  }
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });
})();
