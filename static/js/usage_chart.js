// Draws the usage page's stacked bar chart from the JSON the server embeds (#usage-series).
// Amounts arrive as decimal strings; they are parsed only for drawing, never for sums.
(function () {
  const source = document.getElementById("usage-series");
  const canvas = document.getElementById("usage-chart");
  if (!source || !canvas || typeof Chart === "undefined") return;
  const series = JSON.parse(source.textContent);
  const palette = ["#2f5bea", "#ef6c00", "#2e7d32", "#8e24aa", "#c62828", "#00838f", "#6d4c41", "#546e7a", "#f9a825", "#ad1457"];
  new Chart(canvas, {
    type: "bar",
    data: {
      labels: series.labels,
      datasets: series.datasets.map((set, i) => ({
        label: set.label,
        data: set.data.map(Number),
        backgroundColor: palette[i % palette.length],
      })),
    },
    options: {
      animation: false,
      responsive: true,
      scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } },
      plugins: { legend: { position: "bottom" } },
    },
  });
})();
