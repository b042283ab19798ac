// The receipt's Print button (no inline script: the CSP allows our own files only).
document.querySelectorAll("[data-print]").forEach(function (button) {
  button.addEventListener("click", function () { window.print(); });
});
