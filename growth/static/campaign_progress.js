// The campaign page's runs card: while a run is in progress, ask for its progress every few seconds and move the
// bars; when the work is done, reload once so the results and charts show the final figures.
(function () {
  var card = document.getElementById("campaign-runs");
  if (!card || card.getAttribute("data-in-progress") !== "true") { return; }
  var url = card.getAttribute("data-progress-url");
  var delay = 3000;

  function update(run) {
    var item = card.querySelector('[data-run="' + run.id + '"]');
    if (!item) { return false; }
    var bar = item.querySelector(".progress-bar");
    bar.style.width = run.percent + "%";
    item.querySelector(".progress").setAttribute("aria-valuenow", run.percent);
    var counts = item.querySelector(".run-counts");
    counts.textContent = counts.textContent.replace(/[\d,]+(\D+)[\d,]+/, run.fulfilled.toLocaleString("en-US") +
      "$1" + run.selected.toLocaleString("en-US"));
    return true;
  }

  function poll() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        var known = data.runs.every(update);
        if (!data.in_progress || !known) {
          window.location.reload();
          return;
        }
        window.setTimeout(poll, delay);
      })
      .catch(function () { window.setTimeout(poll, delay * 4); });
  }
  window.setTimeout(poll, delay);
})();
