"""Every environment variable the settings read is documented in .env.example (issue 2)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READ = re.compile(r"""env(?:\.[a-z_]+)?\(\s*["']([A-Z][A-Z0-9_]+)["']""")
LISTED = re.compile(r"^#?\s*([A-Z][A-Z0-9_]+)=", re.MULTILINE)


def test_every_setting_read_from_the_environment_is_in_env_example():
    read = set()
    for path in (ROOT / "config" / "settings").glob("*.py"):
        read |= set(READ.findall(path.read_text(encoding="utf-8")))
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"} <= read  # the pattern still matches
    listed = set(LISTED.findall((ROOT / ".env.example").read_text(encoding="utf-8")))
    assert read - listed == set()


def test_the_readme_starts_with_the_two_commands_and_links_the_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.index("make run") < readme.index("## A five-minute tour")
    assert "make test" in readme.split("## A five-minute tour")[0]
    for doc in (ROOT / "docs").glob("*.md"):
        assert f"docs/{doc.name}" in readme, doc.name
