// Copy buttons: <button data-copy-target="ID">; the element's text goes to the clipboard.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy-target]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copyTarget);
  const status = button.parentElement.querySelector("[data-copy-status]");
  const text = source ? (source.value || source.textContent).trim() : "";
  try {
    await navigator.clipboard.writeText(text);
    if (status) status.textContent = "Copied.";
  } catch (error) {
    // Clipboard refused (no HTTPS, no permission): select the text so Ctrl+C works.
    if (source && source.select) source.select();
    if (status) status.textContent = "Selected; press Ctrl+C to copy.";
  }
});
