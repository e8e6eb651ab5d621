// The CRM worklist's keyboard: j / k move the selection down / up the rows, Enter opens the selected task.
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll("[data-crm-row]"));
  if (!rows.length) { return; }
  var at = -1;

  function select(index) {
    if (at >= 0) { rows[at].classList.remove("table-active"); rows[at].removeAttribute("aria-selected"); }
    at = Math.max(0, Math.min(rows.length - 1, index));
    rows[at].classList.add("table-active");
    rows[at].setAttribute("aria-selected", "true");
    rows[at].scrollIntoView({block: "nearest"});
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey ||
        (target && /^(A|INPUT|SELECT|TEXTAREA|BUTTON)$/.test(target.tagName)) || (target && target.isContentEditable)) {
      return;
    }
    if (event.key === "j") { select(at + 1); event.preventDefault(); }
    else if (event.key === "k") { select(at - 1); event.preventDefault(); }
    else if (event.key === "Enter" && at >= 0) { window.location.href = rows[at].getAttribute("data-href"); }
  });
})();
