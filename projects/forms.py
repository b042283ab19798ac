"""Dashboard forms for projects and keys: parse and validate input, nothing else."""

from __future__ import annotations

import ipaddress

from django import forms

from projects.models import ApiKey, Environment, Project

WALLET_ORDER_CHOICES = [
    ("", "Any wallet, in route order"),
    ("CREDIT", "Credit only"),
    ("RMB", "RMB only"),
    ("CREDIT,RMB", "Credit first, then RMB"),
    ("RMB,CREDIT", "RMB first, then Credit"),
]


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


class ProjectForm(forms.Form):
    name = forms.CharField(label="Name", max_length=120)
    environment = forms.ChoiceField(
        label="Environment", choices=Environment.choices, initial=Environment.PRODUCTION
    )


class KeyForm(forms.Form):
    """Create or edit a key. Lists are typed comma-separated; wallets pick an order."""

    project = forms.ModelChoiceField(label="Project", queryset=Project.objects.none())
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
    rpm_limit = forms.IntegerField(label="Requests per minute (RPM)", min_value=1, required=False)
    tpm_limit = forms.IntegerField(label="Tokens per minute (TPM)", min_value=1, required=False)
    expires_at = forms.DateTimeField(
        label="Expires at (UTC)",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
    )

    def __init__(self, *args, org, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = Project.objects.for_org(org).filter(
            archived_at__isnull=True
        )
        if editing:
            del self.fields["project"]

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
        return _split(self.cleaned_data["allowed_models"])

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
