"""Forms for the account pages. Labels are the visible ones the contract names."""

from __future__ import annotations

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm

from accounts.models import Role, User


def _normalize_email(value: str) -> str:
    return (value or "").strip().lower()


class EmailAuthenticationForm(AuthenticationForm):
    """Django's log-in form with the email as the login.

    The field keeps Django's name `username` (axes reads AXES_USERNAME_FORM_FIELD="username"
    from the credentials); it is lower-cased before authenticate(), so every spelling of an
    address counts against one account's failure limit.
    """

    username = forms.EmailField(
        label="Email", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # AuthenticationForm overwrites the label with the model field's verbose name.
        self.fields["username"].label = "Email"

    def clean_username(self) -> str:
        return _normalize_email(self.cleaned_data.get("username"))


class AccountForm(forms.Form):
    """Email and password of a new account (used by sign-up and by invitation sign-up)."""

    email = forms.EmailField(
        label="Email", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )

    def clean_email(self) -> str:
        email = _normalize_email(self.cleaned_data["email"])
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(
                "An account with this email already exists; log in instead."
            )
        return email

    def clean(self):
        cleaned = super().clean()
        password = cleaned.get("password")
        if password:
            try:
                password_validation.validate_password(
                    password, User(email=cleaned.get("email") or "")
                )
            except forms.ValidationError as error:
                self.add_error("password", error)
        return cleaned


class SignupForm(AccountForm):
    organization_name = forms.CharField(label="Organization name", max_length=120)

    def clean_organization_name(self) -> str:
        name = self.cleaned_data["organization_name"].strip()
        if not name:
            raise forms.ValidationError("Give your organization a name.")
        return name


class OrganizationCreateForm(forms.Form):
    name = forms.CharField(label="Organization name", max_length=120)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give your organization a name.")
        return name


class OrganizationSwitchForm(forms.Form):
    org = forms.IntegerField(label="Organization", min_value=1)


class _RoleChoiceMixin:
    """Offer the owner role only to owners (the service enforces it either way)."""

    def __init__(self, *args, can_grant_owner: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if not can_grant_owner:
            self.fields["role"].choices = [c for c in Role.choices if c[0] != Role.OWNER]


class InvitationForm(_RoleChoiceMixin, forms.Form):
    email = forms.EmailField(label="Email")
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.MEMBER)


class RoleForm(_RoleChoiceMixin, forms.Form):
    role = forms.ChoiceField(label="Role", choices=Role.choices)


class ApiTokenForm(forms.Form):
    name = forms.CharField(label="Name", max_length=120, required=False)
    expires_in_days = forms.IntegerField(
        label="Expires after (days)", min_value=1, max_value=366, initial=90
    )
