"""Writes for users, organizations, memberships and invitations.

Every service runs in one transaction and records an audit event for membership and role
changes. Rules about who may do what live here (views only check the minimum role up front).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.text import slugify

from accounts.audit import audit_record
from accounts.errors import AccountsError, InvitationInvalid, LastOwner, RoleTooLow
from accounts.middleware import SESSION_KEY
from accounts.models import ROLE_RANK, Invitation, Membership, Organization, Role, User
from accounts.selectors import invitation_token_hash

# --- Users and organizations ------------------------------------------------------------


def user_create(*, email: str, password: str | None) -> User:
    """A new user with a normalized (lower-case) email.

    Forms check uniqueness first for a friendly message; the case-insensitive unique index
    settles a race, reported as AccountsError.
    """
    try:
        with transaction.atomic():
            return User.objects.create_user(email=email.strip().lower(), password=password)
    except IntegrityError:
        raise AccountsError("An account with this email already exists; log in instead.") from None


def organization_setup(*, org: Organization) -> None:
    """Run `settings.ORGANIZATION_SETUP_HOOKS` (e.g. open the two wallets).

    Higher apps plug in here by dotted path because accounts may not import them. Each hook
    takes `org=` and must be idempotent: `create_tenant` runs them again on an existing org.
    """
    for path in getattr(settings, "ORGANIZATION_SETUP_HOOKS", []):
        import_string(path)(org=org)


def _slug_candidates(name: str, slug: str | None):
    base = slugify(slug or name)[:120] or "org"
    yield base
    for n in range(2, 20):
        yield f"{base}-{n}"
    while True:
        yield f"{base}-{secrets.token_hex(3)}"


def organization_create(*, name: str, owner: User, slug: str | None = None) -> Organization:
    """Create an organization with `owner` as its owner and run the setup hooks.

    The slug comes from the name and gets a suffix when taken; the unique index decides a
    race, so two sign-ups with the same name never collide.
    """
    name = name.strip()
    if not name:
        raise AccountsError("An organization needs a name.")
    with transaction.atomic():
        for candidate in _slug_candidates(name, slug):
            if Organization.objects.filter(slug=candidate).exists():
                continue
            try:
                with transaction.atomic():
                    org = Organization.objects.create(name=name, slug=candidate)
                break
            except IntegrityError:
                continue
        membership = Membership.objects.create(user=owner, org=org, role=Role.OWNER)
        audit_record(org=org, actor=owner, action="organization.create", target=org)
        audit_record(
            org=org,
            actor=owner,
            action="membership.create",
            target=membership,
            changes={"user": owner.email, "role": Role.OWNER},
        )
        organization_setup(org=org)
    return org


def user_signup(*, email: str, password: str, organization_name: str) -> tuple[User, Organization]:
    """Sign-up: the user and their first organization (with its wallets), atomically."""
    with transaction.atomic():
        user = user_create(email=email, password=password)
        org = organization_create(name=organization_name, owner=user)
    return user, org


def organization_switch(*, session, user: User, org_id: int) -> Membership:
    """Make `org_id` the session's current organization.

    Raises Membership.DoesNotExist when the user does not belong to it (views answer 404).
    """
    membership = Membership.objects.for_org(org_id).select_related("org").get(user=user)
    session[SESSION_KEY] = membership.org_id
    return membership


# --- Memberships ------------------------------------------------------------------------


def _actor_membership(*, org: Organization | int, actor: User) -> Membership:
    membership = Membership.objects.for_org(org).filter(user=actor).first()
    if membership is None:
        raise RoleTooLow("You are not a member of this organization.")
    return membership


def _rank(role: str) -> int:
    return ROLE_RANK[Role(role)]


def _lock_owners(*, org_id: int) -> list[Membership]:
    """Lock the owner rows so two owners cannot demote each other at the same time."""
    return list(
        Membership.objects.for_org(org_id)
        .select_for_update()
        .filter(role=Role.OWNER)
        .order_by("pk")
    )


def membership_set_role(*, actor: User, membership: Membership, role: str) -> Membership:
    """Change a member's role.

    Admins manage members and viewers (and may make admins); only owners grant or take the
    owner role. The last owner cannot be demoted.
    """
    if role not in Role.values:
        raise AccountsError(f"Unknown role: {role}.")
    with transaction.atomic():
        owners = _lock_owners(org_id=membership.org_id)
        membership = Membership.objects.select_for_update().get(pk=membership.pk)
        mine = _actor_membership(org=membership.org_id, actor=actor)
        if not mine.has_role(Role.ADMIN):
            raise RoleTooLow("Only owners and admins can change roles.")
        if (
            _rank(role) > _rank(mine.role) or _rank(membership.role) > _rank(mine.role)
        ) and not mine.has_role(Role.OWNER):
            raise RoleTooLow("Only an owner can grant or change the owner role.")
        if membership.role == role:
            return membership
        if membership.role == Role.OWNER and len(owners) == 1:
            raise LastOwner(
                "The organization needs at least one owner; make someone else owner first."
            )
        before = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        audit_record(
            org=membership.org,
            actor=actor,
            action="membership.role_change",
            target=membership,
            changes={"user": membership.user.email, "role": [before, role]},
        )
    return membership


def membership_remove(*, actor: User, membership: Membership) -> None:
    """Remove a member (owners/admins), or leave (anyone removing themselves).

    Admins cannot remove owners; the last owner can never be removed.
    """
    with transaction.atomic():
        owners = _lock_owners(org_id=membership.org_id)
        membership = (
            Membership.objects.select_for_update().select_related("user").get(pk=membership.pk)
        )
        mine = _actor_membership(org=membership.org_id, actor=actor)
        leaving = mine.pk == membership.pk
        if not leaving:
            if not mine.has_role(Role.ADMIN):
                raise RoleTooLow("Only owners and admins can remove members.")
            if _rank(membership.role) > _rank(mine.role):
                raise RoleTooLow("Only an owner can remove an owner.")
        if membership.role == Role.OWNER and len(owners) == 1:
            raise LastOwner(
                "The organization needs at least one owner; make someone else owner first."
            )
        audit_record(
            org=membership.org,
            actor=actor,
            action="membership.leave" if leaving else "membership.remove",
            target=membership,
            changes={"user": membership.user.email, "role": membership.role},
        )
        membership.delete()


# --- Invitations ------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedInvitation:
    invitation: Invitation
    token: str  # shown once, in the emailed link; only its hash is stored
    accept_url: str


def invitation_create(
    *,
    org: Organization,
    invited_by: User,
    email: str,
    role: str = Role.MEMBER,
    base_url: str = "",
) -> CreatedInvitation:
    """Invite `email` with `role` and email them a one-time link (after commit).

    `base_url` (scheme and host, e.g. "https://tokenforge.example") makes the link absolute.
    Nobody can invite with a role above their own; members and viewers cannot invite.
    """
    email = email.strip().lower()
    if role not in Role.values:
        raise AccountsError(f"Unknown role: {role}.")
    with transaction.atomic():
        mine = _actor_membership(org=org, actor=invited_by)
        if not mine.has_role(Role.ADMIN):
            raise RoleTooLow("Only owners and admins can invite.")
        if _rank(role) > _rank(mine.role):
            raise RoleTooLow("You cannot invite someone with a role above your own.")
        if Membership.objects.for_org(org).filter(user__email__iexact=email).exists():
            raise AccountsError(f"{email} is already a member.")
        token = secrets.token_urlsafe(32)
        expires_at = timezone.now() + timedelta(days=settings.INVITATION_TTL_DAYS)
        # Inviting an email that already has an open invitation re-sends it (a fresh link
        # and expiry; the old link stops working) instead of adding a duplicate.
        invitation = (
            Invitation.objects.select_for_update()
            .filter(org=org, email__iexact=email, accepted_at__isnull=True)
            .order_by("-pk")
            .first()
        )
        action = "invitation.resend"
        if invitation is None:
            action = "invitation.create"
            invitation = Invitation.objects.create(
                org=org,
                email=email,
                role=role,
                token_hash=invitation_token_hash(token),
                invited_by=invited_by,
                expires_at=expires_at,
            )
        else:
            invitation.role = role
            invitation.token_hash = invitation_token_hash(token)
            invitation.invited_by = invited_by
            invitation.expires_at = expires_at
            invitation.save(update_fields=["role", "token_hash", "invited_by", "expires_at"])
        audit_record(
            org=org,
            actor=invited_by,
            action=action,
            target=invitation,
            changes={"email": email, "role": role},
        )
        accept_url = base_url.rstrip("/") + reverse("accounts:invite_accept", args=[token])
        subject = f"You are invited to {org.name} on tokenforge"
        body = (
            f"{invited_by.email} invited you to join {org.name} on tokenforge as {role}.\n\n"
            f"Accept the invitation (the link works once, until {invitation.expires_at:%Y-%m-%d %H:%M} UTC):\n"
            f"{accept_url}\n"
        )
        transaction.on_commit(
            lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [email])
        )
    return CreatedInvitation(invitation=invitation, token=token, accept_url=accept_url)


def invitation_accept(*, token: str, user: User) -> Membership:
    """Use a one-time invitation: the user joins the organization with the invited role.

    Raises InvitationInvalid when the token is unknown, used, expired or meant for another
    email. The row lock makes a second, concurrent use fail too.
    """
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update()
            .select_related("org")
            .filter(token_hash=invitation_token_hash(token))
            .first()
        )
        if invitation is None or invitation.accepted_at is not None:
            raise InvitationInvalid("This invitation link is invalid or has already been used.")
        if invitation.expires_at <= timezone.now():
            raise InvitationInvalid("This invitation has expired; ask for a new one.")
        if invitation.email.lower() != user.email.lower():
            raise InvitationInvalid(
                f"This invitation was sent to {invitation.email}; log in with that address."
            )
        invitation.accepted_at = timezone.now()
        invitation.save(update_fields=["accepted_at"])
        membership, created = Membership.objects.get_or_create(
            org=invitation.org, user=user, defaults={"role": invitation.role}
        )
        audit_record(org=invitation.org, actor=user, action="invitation.accept", target=invitation)
        if created:
            audit_record(
                org=invitation.org,
                actor=user,
                action="membership.create",
                target=membership,
                changes={"user": user.email, "role": membership.role, "invitation": invitation.pk},
            )
    return membership


def invitation_signup(*, token: str, email: str, password: str) -> Membership:
    """A newcomer creates an account from an invitation link and joins at once."""
    with transaction.atomic():
        user = user_create(email=email, password=password)
        return invitation_accept(token=token, user=user)


def invitation_revoke(*, actor: User, invitation: Invitation) -> None:
    """Withdraw a pending invitation (owners and admins)."""
    with transaction.atomic():
        mine = _actor_membership(org=invitation.org_id, actor=actor)
        if not mine.has_role(Role.ADMIN):
            raise RoleTooLow("Only owners and admins can revoke invitations.")
        audit_record(
            org=invitation.org,
            actor=actor,
            action="invitation.revoke",
            target=invitation,
            changes={"email": invitation.email},
        )
        invitation.delete()
