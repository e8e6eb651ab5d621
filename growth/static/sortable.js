// Sort a <table data-sortable> by the column whose header button (data-sort="number"|"text") is pressed.
// Cells give their value in data-value (raw numbers, not the formatted text); empty values sort last.
// The <tfoot> (totals) never moves. Pressing the same header again reverses the order.
document.querySelectorAll("table[data-sortable]").forEach(function (table) {
  var buttons = table.querySelectorAll("thead [data-sort]");
  buttons.forEach(function (button) {
    button.addEventListener("click", function () {
      var th = button.closest("th");
      var column = Array.prototype.indexOf.call(th.parentNode.children, th);
      var numeric = button.getAttribute("data-sort") === "number";
      // Numbers start from the largest (what people look for first); text from A.
      var descending = th.getAttribute("aria-sort") ? th.getAttribute("aria-sort") === "ascending" : numeric;
      table.querySelectorAll("thead th").forEach(function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function value(row) {
        var raw = row.cells[column].getAttribute("data-value");
        if (raw === null || raw === "") { return null; }
        return numeric ? parseFloat(raw) : raw;
      }
      rows.sort(function (a, b) {
        var x = value(a), y = value(b);
        if (x === null || y === null) { return x === y ? 0 : (x === null ? 1 : -1); }
        var order = numeric ? x - y : String(x).localeCompare(String(y), "zh");
        return descending ? -order : order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
