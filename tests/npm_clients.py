"""Real client programs from npm, installed inside the test run into a reusable cache dir
(`TOKENFORGE_CLIENTS_CACHE`, default ~/.cache/tokenforge-clients): a test that needs one
is skipped, with the reason, only when npm cannot install it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def npm_client(package: str, version: str, binary: str) -> Path:
    """The path of `binary` from `package@version`, installing it on first use."""
    root = Path(
        os.environ.get("TOKENFORGE_CLIENTS_CACHE") or Path.home() / ".cache" / "tokenforge-clients"
    )
    prefix = root / f"{package.strip('@').replace('/', '-')}-{version}"
    path = prefix / "node_modules" / ".bin" / binary
    if path.exists():
        return path
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip(f"npm is not installed, so {package}@{version} cannot be installed")
    prefix.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(prefix),
                f"{package}@{version}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"npm could not install {package}@{version} within 10 minutes")
    if done.returncode != 0 or not path.exists():
        pytest.skip(f"npm could not install {package}@{version}: {done.stderr.strip()[-500:]}")
    return path
