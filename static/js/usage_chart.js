// Draws the usage page's stacked bar chart from the JSON the server embeds (#usage-series).
// Amounts arrive as decimal strings; they are parsed only for drawing, never for sums.
(function () {
  const source = document.getElementById("usage-series");
  const canvas = document.getElementById("usage-chart");
  if (!source || !canvas || typeof Chart === "undefined") return;
  const series = JSON.parse(source.textContent);
  // Axis labels in the site's money format: a symbol, no exponent (never 6.000000E-6).
  const symbol = series.symbol || "";
  function moneyTick(value) {
    const n = Number(value);
    if (n === 0) return symbol + "0";
    const abs = Math.abs(n);
    const digits = abs >= 1 ? 2 : Math.min(10, Math.max(2, 1 - Math.floor(Math.log10(abs)) + 1));
    const text = abs.toLocaleString("en-US", { minimumFractionDigits: abs >= 0.01 ? 2 : 0, maximumFractionDigits: Math.max(2, digits) });
    return (n < 0 ? "-" : "") + symbol + text;
  }
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
      scales: {
        x: { stacked: true },
        y: { stacked: true, beginAtZero: true, ticks: { callback: moneyTick } },
      },
      plugins: { legend: { position: "bottom" } },
    },
  });
})();
