"""Figures come from code: returns, volatility, drawdown, moving averages and RSI checked
against hand computations; the CSV is validated with line numbers; the configured price
source is used when reachable and named clearly when not."""

from __future__ import annotations

import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings

from researcher.figures import PriceDataError, figures_compute, moving_average, prices_parse, rsi
from researcher.services import PriceSourceError, RunInputError, run_create
from tests.mocks.openai_upstream import dead_base_url
from tests.researcher.conftest import make_tenant, price_csv, research_routes, run_body

HEADER = "date,open,high,low,close,volume"


def _csv(closes: list[float]) -> str:
    rows = [HEADER]
    for i, close in enumerate(closes):
        rows.append(f"2025-01-{i + 1:02d},{close},{close + 1},{close - 1},{close},100")
    return "\n".join(rows)


def test_returns_drawdown_and_moving_averages_match_hand_computation():
    rows = prices_parse(_csv([100, 110, 99, 121, 120, 130]))
    figures = figures_compute(rows)
    assert figures["return_5d_pct"] == "30.00"  # 130 / 100 - 1
    assert figures["return_total_pct"] == "30.00"
    assert figures["max_drawdown_pct"] == "-10.00"  # 110 -> 99
    assert figures["last_close"] == "130.00" and figures["days"] == 6
    assert figures["ma_20"] is None and figures["rsi_14"] is None  # too short
    assert moving_average([Decimal(x) for x in (1, 2, 3, 4)], 2) == [
        None,
        Decimal("1.5"),
        Decimal("2.5"),
        Decimal("3.5"),
    ]


def test_rsi_is_100_when_it_only_rises_and_about_50_when_it_alternates():
    rising = [Decimal(100 + i) for i in range(30)]
    assert rsi(rising) == 100
    alternating = [Decimal(100 + (i % 2)) for i in range(31)]
    assert Decimal(40) < rsi(alternating) < Decimal(60)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("when,open\n", "line 1"),
        (HEADER + "\n2025-01-02,1,2,0.5,1.5,10\n2025-13-01,1,2,0.5,1.5,10", "line 3"),
        (HEADER + "\n2025-01-02,1,2,0.5,1.5,10\n2025-01-03,1,2,0.5,x,10", "line 3"),
        (HEADER + "\n2025-01-02,1,2,0.5,1.5\n", "line 2"),
        (HEADER + "\n2025-01-02,1,2,0.5,1.5,10\n2025-01-02,1,2,0.5,1.5,10", "line 3"),
        (HEADER + "\n2025-01-02,1,2,0.5,1.5,10\n2025-01-03,5,2,0.5,1.5,10", "line 3"),
        (HEADER + "\n2025-01-02,1,2,0.5,-1.5,10\n2025-01-03,1,2,0.5,1.5,10", "line 2"),
    ],
)
def test_bad_csv_names_the_line(text, line):
    with pytest.raises(PriceDataError) as err:
        prices_parse(text, ticker="NVDA")
    assert line in str(err.value) and "NVDA" in str(err.value)


class _Prices(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        body = price_csv(40).encode()
        self.send_response(200 if self.path.endswith("/NVDA.csv") else 404)
        self.send_header("Content-Type", "text/csv")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def price_source():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Prices)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/prices/{{ticker}}.csv"
    server.shutdown()


@pytest.mark.django_db(transaction=True)
def test_the_configured_price_source_fills_missing_histories(upstream, price_source):
    t = make_tenant()
    research_routes(upstream.base_url)
    with override_settings(RESEARCHER_PRICE_SOURCE_URL=price_source):
        run, _ = run_create(
            org_id=t.org.pk, project_id=t.project.pk, data=run_body(prices=None), enqueue=False
        )
        assert run.figures["NVDA"]["days"] == 40
        with pytest.raises(PriceSourceError) as err:
            run_create(
                org_id=t.org.pk,
                project_id=t.project.pk,
                data=run_body(prices=None, tickers=["AMD"]),
                enqueue=False,
            )
        assert "HTTP 404" in err.value.message


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_price_source_is_a_clear_error(upstream):
    t = make_tenant()
    research_routes(upstream.base_url)
    dead = dead_base_url() + "/{ticker}.csv"
    with override_settings(RESEARCHER_PRICE_SOURCE_URL=dead), pytest.raises(RunInputError) as err:
        run_create(
            org_id=t.org.pk, project_id=t.project.pk, data=run_body(prices=None), enqueue=False
        )
    assert err.value.status == 502 and err.value.code == "price_source_unavailable"
    assert "could not be reached for NVDA" in err.value.message
