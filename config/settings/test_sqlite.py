"""The money tests again, on SQLite: the embedded default (`make run`) runs the same ledger code.

`pytest --ds config.settings.test_sqlite tests/ledger/...`: the same test files as on PostgreSQL;
tests that need PostgreSQL itself (many connections racing, its SQL fast path) mark themselves
`postgres_only` and are skipped here.
"""

import os
from pathlib import Path

_DEFAULT = Path(__file__).resolve().parents[2] / "var" / "test-sqlite.sqlite3"
_DEFAULT.parent.mkdir(exist_ok=True)
os.environ["TEST_DATABASE_URL"] = "sqlite:///" + os.environ.get("TEST_SQLITE_PATH", str(_DEFAULT))

from .test import *  # noqa: E402,F403

# A file, not :memory:, so test servers on other threads see the same database.
DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_DATABASE_URL"].removeprefix("sqlite:///")}  # noqa: F405
