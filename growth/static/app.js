// Confirmation before destructive actions: <form data-confirm="..."> asks before submitting.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var message = form.getAttribute && form.getAttribute("data-confirm");
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});
// Copy buttons: <button data-copy="#selector">.
document.addEventListener("click", function (event) {
  var button = event.target.closest && event.target.closest("[data-copy]");
  if (!button) { return; }
  var source = document.querySelector(button.getAttribute("data-copy"));
  if (source && navigator.clipboard) { navigator.clipboard.writeText(source.value || source.textContent); }
});
