"""Account pages: sign-up, organizations, members and invitations. Thin: forms in, services
out, tenant rows only through `for_org(request.org)`."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts import services, tokens
from accounts.decorators import org_required
from accounts.errors import AccountsError, RoleTooLow
from accounts.forms import (
    AccountForm,
    ApiTokenForm,
    InvitationForm,
    OrganizationCreateForm,
    OrganizationSwitchForm,
    RoleForm,
    SignupForm,
)
from accounts.middleware import SESSION_KEY
from accounts.models import Invitation, Membership, Role
from accounts.selectors import (
    AUDIT_KINDS,
    audit_actor_label,
    audit_change_lines,
    audit_events,
    invitation_pending_by_token,
    invitations_pending,
    member_user_ids,
    members_of,
)

_BACKEND = "django.contrib.auth.backends.ModelBackend"
AUDIT_PAGE_SIZE = 50


def home(request):
    return render(request, "home.html")


def signup(request):
    if request.user.is_authenticated:
        return redirect("ledger:overview")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user, org = services.user_signup(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                organization_name=form.cleaned_data["organization_name"],
            )
        except AccountsError as error:  # e.g. the same email signed up a moment ago
            form.add_error(None, str(error))
            return render(request, "accounts/signup.html", {"form": form})
        login(request, user, backend=_BACKEND)
        request.session[SESSION_KEY] = org.pk
        messages.success(request, f"Welcome to tokenforge. {org.name} is ready.")
        return redirect("ledger:overview")
    return render(request, "accounts/signup.html", {"form": form})


@login_required
def organization_create(request):
    form = OrganizationCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        org = services.organization_create(name=form.cleaned_data["name"], owner=request.user)
        request.session[SESSION_KEY] = org.pk
        messages.success(request, f"{org.name} is ready.")
        return redirect("ledger:overview")
    return render(request, "accounts/organization_create.html", {"form": form})


@login_required
@require_POST
def organization_switch(request):
    form = OrganizationSwitchForm(request.POST)
    if not form.is_valid():
        raise Http404("No such organization.")
    try:
        membership = services.organization_switch(
            session=request.session, user=request.user, org_id=form.cleaned_data["org"]
        )
    except Membership.DoesNotExist:
        raise Http404("No such organization.") from None
    messages.success(request, f"Switched to {membership.org.name}.")
    return redirect("ledger:overview")


@org_required()
def members(request):
    can_manage = request.membership.has_role(Role.ADMIN)
    is_owner = request.membership.has_role(Role.OWNER)
    memberships = members_of(org=request.org)
    rows = [
        {
            "membership": m,
            # Admins see controls only for non-owners; the services enforce the same rule.
            "can_change": can_manage and (is_owner or m.role != Role.OWNER),
            "form": RoleForm(initial={"role": m.role}, prefix=f"m{m.pk}", can_grant_owner=is_owner),
        }
        for m in memberships
    ]
    return render(
        request,
        "accounts/members.html",
        {
            "rows": rows,
            "invitations": invitations_pending(org=request.org),
            "invite_form": InvitationForm(can_grant_owner=is_owner),
            "can_manage": can_manage,
            "is_owner": is_owner,
            "invitation_days": settings.INVITATION_TTL_DAYS,
        },
    )


def _refuse_or_message(request, error: AccountsError) -> None:
    if isinstance(error, RoleTooLow):
        raise PermissionDenied(str(error))
    messages.error(request, str(error))


@org_required(Role.ADMIN)
@require_POST
def member_invite(request):
    form = InvitationForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect("accounts:members")
    try:
        created = services.invitation_create(
            org=request.org,
            invited_by=request.user,
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            base_url=request.build_absolute_uri("/"),
        )
    except AccountsError as error:
        _refuse_or_message(request, error)
    else:
        messages.success(request, f"Invitation emailed to {created.invitation.email}.")
    return redirect("accounts:members")


@org_required(Role.ADMIN)
@require_POST
def member_role(request, membership_id: int):
    membership = get_object_or_404(
        Membership.objects.for_org(request.org).select_related("user"), pk=membership_id
    )
    form = RoleForm(request.POST, prefix=f"m{membership.pk}")
    if not form.is_valid():
        form = RoleForm(request.POST)  # also accept an unprefixed "role" (scripts, tests)
    if not form.is_valid():
        messages.error(request, "Choose a role.")
        return redirect("accounts:members")
    try:
        services.membership_set_role(
            actor=request.user, membership=membership, role=form.cleaned_data["role"]
        )
    except AccountsError as error:
        _refuse_or_message(request, error)
    else:
        messages.success(request, f"{membership.user.email} is now {form.cleaned_data['role']}.")
    return redirect("accounts:members")


@org_required()
@require_POST
def member_remove(request, membership_id: int):
    """Owners/admins remove members; anyone may remove themselves (leave)."""
    membership = get_object_or_404(
        Membership.objects.for_org(request.org).select_related("user"), pk=membership_id
    )
    leaving = membership.user_id == request.user.pk
    try:
        services.membership_remove(actor=request.user, membership=membership)
    except AccountsError as error:
        _refuse_or_message(request, error)
        return redirect("accounts:members")
    if leaving:
        request.session.pop(SESSION_KEY, None)
        messages.success(request, f"You left {membership.org.name}.")
        return redirect("accounts:home")
    messages.success(request, f"{membership.user.email} was removed.")
    return redirect("accounts:members")


@org_required(Role.ADMIN)
@require_POST
def invitation_revoke(request, invitation_id: int):
    invitation = get_object_or_404(
        Invitation.objects.for_org(request.org).filter(accepted_at__isnull=True), pk=invitation_id
    )
    try:
        services.invitation_revoke(actor=request.user, invitation=invitation)
    except AccountsError as error:
        _refuse_or_message(request, error)
    else:
        messages.success(request, f"Invitation to {invitation.email} revoked.")
    return redirect("accounts:members")


def invitation_accept(request, token: str):
    """Logged-in users accept with one button; newcomers create an account here first."""
    invitation = invitation_pending_by_token(token=token)
    usable = invitation is not None
    form = None
    if usable and not request.user.is_authenticated:
        form = AccountForm(request.POST or None, initial={"email": invitation.email})
    if request.method == "POST" and usable:
        try:
            if request.user.is_authenticated:
                membership = services.invitation_accept(token=token, user=request.user)
            elif form.is_valid():
                membership = services.invitation_signup(
                    token=token,
                    email=form.cleaned_data["email"],
                    password=form.cleaned_data["password"],
                )
                login(request, membership.user, backend=_BACKEND)
            else:
                membership = None
        except AccountsError as error:
            messages.error(request, str(error))
            membership = None
        if membership is not None:
            request.session[SESSION_KEY] = membership.org_id
            messages.success(request, f"You joined {membership.org.name} as {membership.role}.")
            return redirect("ledger:overview")
    status = 200 if usable else 404
    return render(
        request,
        "accounts/invitation_accept.html",
        {
            "invitation": invitation if usable else None,
            "form": form,
            "login_url": reverse("accounts:login") + "?next=" + request.path,
        },
        status=status,
    )


@org_required(Role.ADMIN)
def audit_log(request):
    """Who changed what, when, in this organization (owners and admins)."""
    kind = request.GET.get("kind") if request.GET.get("kind") in AUDIT_KINDS else ""
    page = Paginator(audit_events(org=request.org, kind=kind), AUDIT_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    member_ids = member_user_ids(org=request.org)
    rows = [
        {
            "event": event,
            "who": audit_actor_label(event=event, member_ids=member_ids),
            "lines": audit_change_lines(event.changes),
        }
        for event in page
    ]
    return render(
        request,
        "accounts/audit_log.html",
        {
            "title": "Audit log",
            "page": page,
            "rows": rows,
            "kind": kind,
            "kinds": [(value, label) for value, (label, _) in AUDIT_KINDS.items()],
        },
    )


# --- Password changes and management-API tokens ---------------------------------------------


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's page, plus: a new password revokes every management-API token."""

    success_url = reverse_lazy("accounts:password_change_done")

    def form_valid(self, form):
        response = super().form_valid(form)
        tokens.api_tokens_revoke_for_user(user=form.user, reason=tokens.TokenReason.PASSWORD_CHANGE)
        return response


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Django's page, plus: a reset password revokes every management-API token."""

    success_url = reverse_lazy("accounts:password_reset_complete")

    def form_valid(self, form):
        response = super().form_valid(form)
        tokens.api_tokens_revoke_for_user(user=form.user, reason=tokens.TokenReason.PASSWORD_RESET)
        return response


@login_required
def api_tokens(request):
    """Your management-API tokens: create one (shown once), see when each was last used,
    revoke."""
    form = ApiTokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        created = tokens.api_token_create(
            user=request.user,
            name=form.cleaned_data["name"],
            expires_in_days=form.cleaned_data["expires_in_days"],
        )
        response = render(
            request,
            "accounts/api_token_created.html",
            {"title": "Your new API token", "token": created.token, "secret": created.secret},
        )
        response["Cache-Control"] = "no-store"
        return response
    return render(
        request,
        "accounts/api_tokens.html",
        {
            "title": "API tokens",
            "form": form,
            "page": Paginator(tokens.api_tokens_of(user=request.user), AUDIT_PAGE_SIZE).get_page(
                request.GET.get("page")
            ),
            "now": timezone.now(),
        },
    )


@login_required
@require_POST
def api_token_revoke(request, token_id: int):
    token = tokens.api_token_of(user=request.user, pk=token_id)
    if token is None:
        raise Http404
    tokens.api_token_revoke(token=token, actor=request.user)
    messages.success(request, f"Token {token.prefix}… revoked.")
    return redirect("accounts:api_tokens")
