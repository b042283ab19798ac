// AI Researcher pages: the start form's live estimate, the run page's polling while the run
// is active (the page reloads once it ends, to show the report), and the price chart.
(function () {
  const form = document.getElementById("run-form");
  if (form) {
    const out = document.getElementById("run-estimate");
    let timer = null;
    let seq = 0;
    const update = () => {
      const mine = ++seq;
      fetch(form.dataset.estimateUrl, { method: "POST", body: new FormData(form), credentials: "same-origin" })
        .then((r) => r.json())
        .then((data) => {
          if (mine !== seq) return;
          if (data.ok) {
            out.textContent = `Estimate: ${data.estimate.min} to ${data.estimate.max} ${data.estimate.currency}`;
          } else {
            out.textContent = data.estimate
              ? `${data.error}`
              : `Estimate unavailable: ${data.error}`;
          }
        })
        .catch(() => { out.textContent = "Estimate unavailable right now."; });
    };
    form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(update, 400); });
    form.addEventListener("change", () => { clearTimeout(timer); timer = setTimeout(update, 100); });
    update();
  }

  const page = document.getElementById("run-page");
  if (page && page.dataset.active === "true") {
    const poll = () => {
      fetch(page.dataset.statusUrl, { credentials: "same-origin" })
        .then((r) => r.json())
        .then((data) => {
          const status = document.getElementById("run-status");
          status.textContent = data.status;
          document.getElementById("run-spent").textContent = data.spent;
          document.getElementById("run-budget-bar").style.width = `${data.budget_pct}%`;
          const body = document.querySelector("#steps-table tbody");
          if (data.steps && data.steps.length) {
            body.replaceChildren(...data.steps.map((s) => {
              const tr = document.createElement("tr");
              const cells = [
                s.name + (s.attempt > 1 ? ` (try ${s.attempt})` : ""), s.status, s.model,
                s.route || "—", s.wallet, `${s.prompt_tokens} / ${s.completion_tokens}`,
                String(s.max_tokens), s.cost, `${s.latency_ms} ms`, s.request_id,
              ];
              cells.forEach((text, i) => {
                const td = document.createElement("td");
                td.textContent = text;
                if (i >= 5 && i <= 8) td.className = "num";
                tr.appendChild(td);
              });
              return tr;
            }));
          }
          if (data.active) setTimeout(poll, 1500);
          else window.location.reload();
        })
        .catch(() => setTimeout(poll, 3000));
    };
    setTimeout(poll, 1000);
  }

  const source = document.getElementById("run-chart-data");
  const canvas = document.getElementById("run-chart");
  if (source && canvas && typeof Chart !== "undefined") {
    const series = JSON.parse(source.textContent);
    const tickers = Object.keys(series);
    if (!tickers.length) return;
    const first = series[tickers[0]];
    const colors = { close: "#2f5bea", ma_20: "#ef6c00", ma_50: "#2e7d32", ma_200: "#8e24aa" };
    const datasets = [];
    tickers.forEach((ticker) => {
      const s = series[ticker];
      ["close", "ma_20", "ma_50", "ma_200"].forEach((key) => {
        if (!s[key]) return;
        datasets.push({
          label: `${ticker} ${key === "close" ? "close" : key.replace("ma_", "MA")}`,
          data: s[key],
          borderColor: colors[key],
          borderWidth: key === "close" ? 2 : 1,
          pointRadius: 0,
          spanGaps: false,
        });
      });
    });
    window.researcherChart = new Chart(canvas, {
      type: "line",
      data: { labels: first.dates, datasets },
      options: { animation: false, responsive: true, plugins: { legend: { position: "bottom" } } },
    });
  }
})();
