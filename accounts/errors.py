"""Errors the accounts services raise; views turn them into a message or a 403."""

from __future__ import annotations


class AccountsError(Exception):
    """A request the rules refuse; the message is safe to show to the user."""


class RoleTooLow(AccountsError):
    """The acting member's role does not allow this change."""


class LastOwner(AccountsError):
    """The change would leave the organization without an owner."""


class InvitationInvalid(AccountsError):
    """Unknown, already used, expired, or addressed to another email."""
