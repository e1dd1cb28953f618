// Draws every chart of the page: each .chart element carries its Plotly figure as JSON.
(function () {
  function draw() {
    document.querySelectorAll(".chart[data-figure]").forEach(function (el) {
      var fig = JSON.parse(el.getAttribute("data-figure"));
      var config = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["toImage"] };
      window.Plotly.newPlot(el, fig.data, fig.layout, config).then(function () {
        el.setAttribute("data-drawn", String(fig.data.length));
      });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
