// Render every <div class="plotly-chart" data-figure="{json}"> with the locally served Plotly.js.
document.querySelectorAll(".plotly-chart").forEach(function (el) {
  var figure = JSON.parse(el.getAttribute("data-figure"));
  window.Plotly.newPlot(el, figure.data, figure.layout, {displaylogo: false, responsive: true});
});
