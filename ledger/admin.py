"""Operator admin for the ledger. Top-up and redemption admin lives in admin_topups."""

from ledger import admin_topups  # noqa: F401 - registers top-up models
