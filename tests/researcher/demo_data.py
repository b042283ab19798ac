"""The demo price history, for tests that type it into the dashboard."""

from researcher.demo import demo_prices_csv

DEMO_CSV = demo_prices_csv()
