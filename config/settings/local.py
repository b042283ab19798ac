"""Development: the embedded demo of `make run` (SQLite, filesystem broker unless told otherwise)."""

import os

os.environ.setdefault("DEBUG", "true")

from .base import *  # noqa: E402,F403
