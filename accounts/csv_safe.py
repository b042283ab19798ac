"""Every CSV the app writes goes through `csv_writer`: cells a spreadsheet would run as a
formula are neutralised as OWASP recommends (CSV injection).

A text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading
single quote, so `=HYPERLINK(...)` in a project or model name is shown, never evaluated.
Numbers (int, Decimal) are written as they are: a negative cost stays a number. Quoting of
separators and quotes is the csv module's.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeWriter:
    """csv.writer with every text cell passed through `csv_cell`."""

    def __init__(self, file, **kwargs):
        self._writer = csv.writer(file, **kwargs)

    def writerow(self, row: Iterable[Any]):
        return self._writer.writerow([csv_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(file, **kwargs) -> SafeWriter:
    return SafeWriter(file, **kwargs)
