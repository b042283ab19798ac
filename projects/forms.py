"""Dashboard forms for projects and keys: parse and validate input, nothing else."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from decimal import Decimal

from django import forms
from django.utils import timezone

from projects.models import ApiKey, Environment, Project

WALLET_ORDER_CHOICES = [
    ("", "Any wallet, in route order"),
    ("CREDIT", "Credit only"),
    ("RMB", "RMB only"),
    ("CREDIT,RMB", "Credit first, then RMB"),
    ("RMB,CREDIT", "RMB first, then Credit"),
]


# Callables returning the public model names the gateway knows, registered by higher apps
# (routing) so the key form can reject a typo in the allow-list without importing them.
MODEL_NAMES_PROVIDERS: list[Callable[[], set[str]]] = []

BUDGET_PERIOD_CHOICES = [
    ("month", "per calendar month (UTC)"),
    ("week", "per week (Monday, UTC)"),
    ("day", "per day (UTC)"),
    ("total", "in total, counted from when the budget is set"),
]
BUDGET_CURRENCY_CHOICES = [("CREDIT", "Credit (USD)"), ("RMB", "RMB (CNY)")]


def _known_models() -> set[str] | None:
    if not MODEL_NAMES_PROVIDERS:
        return None
    names: set[str] = set()
    for provider in MODEL_NAMES_PROVIDERS:
        names |= set(provider())
    return names


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


class ProjectForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=120,
        error_messages={
            "required": "Give the project a name, e.g. chatbot.",
            "max_length": "Keep the name to 120 characters or fewer.",
        },
    )
    environment = forms.ChoiceField(
        label="Environment", choices=Environment.choices, initial=Environment.PRODUCTION
    )


class KeyForm(forms.Form):
    """Create or edit a key. Lists are typed comma-separated; wallets pick an order."""

    project = forms.ModelChoiceField(
        label="Project",
        queryset=Project.objects.none(),
        error_messages={"required": "Choose the project this key belongs to."},
    )
    name = forms.CharField(label="Name", max_length=120, required=False)
    allowed_models = forms.CharField(
        label="Allowed models",
        required=False,
        help_text="Comma-separated public model names; empty allows every model.",
    )
    allowed_wallets = forms.ChoiceField(
        label="Allowed wallets and order", choices=WALLET_ORDER_CHOICES, required=False
    )
    ip_allowlist = forms.CharField(
        label="IP allowlist",
        required=False,
        help_text="Comma-separated addresses or CIDR ranges; empty allows any address.",
    )
    rpm_limit = forms.IntegerField(
        label="Requests per minute (RPM)",
        min_value=1,
        required=False,
        error_messages={"min_value": "Requests per minute must be at least 1, or empty for none."},
    )
    tpm_limit = forms.IntegerField(
        label="Tokens per minute (TPM)",
        min_value=1,
        required=False,
        error_messages={"min_value": "Tokens per minute must be at least 1, or empty for none."},
    )
    expires_at = forms.DateTimeField(
        label="Expires at (UTC)",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        error_messages={"invalid": "Enter the expiry as a date and time, e.g. 2030-01-31 18:00."},
    )
    # An optional budget set with the key (create form only); the ledger applies it.
    budget_amount = forms.DecimalField(
        label="Budget",
        required=False,
        min_value=Decimal("0.0001"),
        max_value=Decimal("1000000"),
        decimal_places=4,
        help_text="Optional: the most this key may spend. Empty for no key budget.",
        error_messages={
            "min_value": "A budget must be more than zero; leave it empty for no budget.",
            "max_value": "A budget can be at most 1,000,000.",
            "max_decimal_places": "Use at most 4 decimals for a budget.",
            "invalid": "Enter the budget as a number, e.g. 25 or 2.50.",
        },
    )
    budget_currency = forms.ChoiceField(
        label="Budget wallet", choices=BUDGET_CURRENCY_CHOICES, required=False
    )
    budget_period = forms.ChoiceField(
        label="Budget period", choices=BUDGET_PERIOD_CHOICES, required=False, initial="month"
    )

    def __init__(self, *args, org, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = Project.objects.for_org(org).filter(
            archived_at__isnull=True
        )
        if editing:
            for name in ("project", "budget_amount", "budget_currency", "budget_period"):
                del self.fields[name]

    @classmethod
    def initial_for(cls, api_key: ApiKey) -> dict:
        return {
            "name": api_key.name,
            "allowed_models": ", ".join(api_key.allowed_models),
            "allowed_wallets": ",".join(api_key.allowed_wallets),
            "ip_allowlist": ", ".join(api_key.ip_allowlist),
            "rpm_limit": api_key.rpm_limit,
            "tpm_limit": api_key.tpm_limit,
            "expires_at": api_key.expires_at,
        }

    def clean_allowed_models(self) -> list[str]:
        names = _split(self.cleaned_data["allowed_models"])
        known = _known_models()
        if known is not None:
            unknown = [name for name in names if name not in known]
            if unknown:
                listed = ", ".join(sorted(known)) or "none yet"
                raise forms.ValidationError(
                    f"Unknown model {', '.join(unknown)}: use the names on the Models page "
                    f"({listed})."
                )
        return names

    def clean_expires_at(self):
        value = self.cleaned_data["expires_at"]
        if value is not None and value <= timezone.now():
            raise forms.ValidationError(
                "The expiry is in the past: choose a future date, or leave it empty."
            )
        return value

    def clean_allowed_wallets(self) -> list[str]:
        return _split(self.cleaned_data["allowed_wallets"])

    def clean_ip_allowlist(self) -> list[str]:
        entries = _split(self.cleaned_data["ip_allowlist"])
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise forms.ValidationError(f"{entry!r} is not an IP address or range.") from exc
        return entries

    def budget_values(self) -> dict | None:
        """The budget to set with a new key, or None."""
        amount = self.cleaned_data.get("budget_amount")
        if amount is None:
            return None
        return {
            "amount": amount,
            "currency": self.cleaned_data.get("budget_currency") or "CREDIT",
            "period": self.cleaned_data.get("budget_period") or "month",
        }

    def key_values(self) -> dict:
        """The cleaned values in the keyword form `key_create` / `key_update` take."""
        data = self.cleaned_data
        return {
            "name": data["name"],
            "allowed_models": data["allowed_models"],
            "allowed_wallets": data["allowed_wallets"],
            "ip_allowlist": data["ip_allowlist"],
            "rpm_limit": data["rpm_limit"],
            "tpm_limit": data["tpm_limit"],
            "expires_at": data["expires_at"],
        }
