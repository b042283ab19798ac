"""Staff accounts without permissions cannot create money or change anything in admin.

The sweep walks every admin URL (each registered ModelAdmin's changelist, add, change,
history and delete views and its custom URLs, the site's own views and every other view
mounted under /admin/, e.g. /admin/overview/) with GET and POST, and POSTs every action of
every ModelAdmin, as a staff user with zero permissions: each answers 403 (Django's own
guards: the app index is a 404 and the index, password change and logout are the user's
own), and no money or row moved. A second sweep gives the user every *view* permission:
no action is offered or runs, since each one declares the permission it needs.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.auth.models import Group, Permission
from django.db.models import Sum
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from accounts.models import AuditEvent, Membership, User
from accounts.services import invitation_create
from ledger.models import (
    Account,
    Budget,
    Posting,
    RedemptionBatch,
    RedemptionCode,
    TopUp,
    Transaction,
    WebhookEvent,
)
from ledger.services.budgets import budget_set, counter_for
from ledger.services.redemptions import redemption_batch_create
from ledger.services.topups import topup_grant
from projects.models import ApiKey, Project
from routing.models import Model, Route, Upstream
from tests.projects.dashboard_fixtures import Tenant

pytestmark = pytest.mark.django_db

# The user's own pages, open to any staff account by design.
OWN_PAGES = {"index", "logout", "password_change", "password_change_done", "jsi18n", "login"}
# Django's own guards that answer something other than 403: the app index is a 404 when
# the user may see no model of the app; the catch-all and view-on-site redirect or 404.
DJANGO_GUARDED = {"app_list": {404}, "autocomplete": {403, 405}}

# Everything an action or add view could plausibly need, so a missing check would act.
POST_DATA = {
    "org": "",
    "currency": "CREDIT",
    "amount": "1000000",
    "reference": "sweep-grant",
    "reason": "sweep",
    "name": "sweep batch",
    "count": "5",
    "apply": "1",
    "post": "yes",
}


@pytest.fixture
def world(db):
    """One row of every kind admin shows, so change, history and delete views have targets."""
    tenant = Tenant()
    operator = User.objects.create_superuser(email="root@example.com", password="pw-root-123456")
    topup_grant(
        org=tenant.org, currency="CREDIT", amount=Decimal("5"), reference="seed", actor=operator
    )
    redemption_batch_create(name="seed", currency="CREDIT", amount="1", count=2, actor=operator)
    budget_set(org=tenant.org, project=tenant.project, currency="CREDIT", amount="5", period="day")
    invitation_create(
        org=tenant.org, invited_by=tenant.users["owner"], email="new@example.com", role="member"
    )
    WebhookEvent.objects.create(provider="stripe", event_id="evt_seed", event_type="x")
    upstream = Upstream.objects.create(name="up", provider="openai", base_url="http://x/v1")
    model = Model.objects.create(name="m")
    Route.objects.create(
        model=model, upstream=upstream, upstream_model="m", price_input=1, price_output=1
    )
    Group.objects.create(name="ops")
    counter_for(budget=Budget.objects.get(), moment=timezone.now())
    POST_DATA["org"] = str(tenant.org.pk)
    return tenant


def _no_perm_staff() -> User:
    return User.objects.create_user(email="staff@example.com", password="pw", is_staff=True)


def _snapshot() -> dict:
    """Every number a missing permission check could change."""
    return {
        "transactions": Transaction.objects.count(),
        "postings": Posting.objects.count(),
        "posted": Account.objects.aggregate(s=Sum("posted"))["s"],
        "topups": TopUp.objects.count(),
        "batches": RedemptionBatch.objects.count(),
        "codes": RedemptionCode.objects.count(),
        "audit": AuditEvent.objects.count(),
        "revoked_keys": ApiKey.objects.filter(revoked_at__isnull=False).count(),
        "keys": ApiKey.objects.count(),
        "archived": Project.objects.filter(archived_at__isnull=False).count(),
        "projects": Project.objects.count(),
        "disabled_upstreams": Upstream.objects.filter(enabled=False).count(),
        "upstreams": Upstream.objects.count(),
        "routes": Route.objects.count(),
        "budgets": Budget.objects.count(),
        "memberships": Membership.objects.count(),
        "users": User.objects.count(),
    }


def _model_admin_urls() -> list[tuple[str, str]]:
    """(name, url) of every URL of every registered ModelAdmin, with a real object id."""
    urls = []
    for model, model_admin in admin.site._registry.items():
        row = model._default_manager.order_by("pk").first()
        pk = str(row.pk) if row is not None else "999999"
        for pattern in model_admin.get_urls():
            if not isinstance(pattern, URLPattern) or not pattern.name:
                continue
            route = str(pattern.pattern)
            args = [pk] if ("object_id" in route or "<id>" in route) else []
            url = reverse(f"admin:{pattern.name}", args=args)
            urls.append((pattern.name if row is not None else f"{pattern.name}:no-row", url))
    return urls


def _site_urls() -> list[tuple[str, str]]:
    """The admin site's own views (app indexes, autocomplete) and views mounted under /admin/."""
    urls = []
    for app_label in {m._meta.app_label for m in admin.site._registry}:
        urls.append(("app_list", reverse("admin:app_list", args=[app_label])))
    urls.append(("autocomplete", reverse("admin:autocomplete")))
    for pattern in get_resolver().url_patterns:
        route = str(pattern.pattern)
        if route.startswith("admin/") and isinstance(pattern, URLPattern):
            urls.append((pattern.name, "/" + route))
        elif isinstance(pattern, URLResolver) and route.startswith("admin/"):
            for inner in pattern.url_patterns:
                if isinstance(inner, URLPattern) and inner.name and inner.name not in OWN_PAGES:
                    if inner.name in {"app_list", "autocomplete", "view_on_site"}:
                        continue
                    if str(inner.pattern).endswith("$") and "(?P<url>" in str(inner.pattern):
                        continue  # the catch-all
                    try:
                        urls.append((inner.name, reverse(f"admin:{inner.name}")))
                    except Exception:  # noqa: BLE001 - only parameterless ones here
                        continue
    return urls


def test_every_admin_url_and_action_is_403_for_staff_without_permissions(world):
    client = Client()
    client.force_login(_no_perm_staff())
    before = _snapshot()
    urls = _model_admin_urls() + _site_urls()
    assert any(name == "admin_overview" for name, _ in urls)
    assert any(name == "ledger_topup_add" for name, _ in urls)
    wrong = []
    for name, url in urls:
        allowed = DJANGO_GUARDED.get(name, {403})
        if name.endswith("_history:no-row"):
            allowed = {302}
        for method in ("get", "post"):
            status = getattr(client, method)(url, POST_DATA).status_code
            if status not in allowed:
                wrong.append((method, url, status))
    for model, model_admin in admin.site._registry.items():
        row = model._default_manager.order_by("pk").first()
        changelist = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for _func, action, _desc in model_admin._get_base_actions():
            data = {
                **POST_DATA,
                "action": action,
                "index": "0",
                helpers.ACTION_CHECKBOX_NAME: [str(row.pk)] if row is not None else [],
            }
            status = client.post(changelist, data).status_code
            if status != 403:
                wrong.append(("action", f"{changelist} {action}", status))
    assert wrong == [], "\n".join(map(str, wrong))
    assert _snapshot() == before


def test_every_admin_action_declares_a_permission_that_exists():
    missing = []
    for model, model_admin in admin.site._registry.items():
        for func, action, _desc in model_admin._get_base_actions():
            needed = getattr(func, "allowed_permissions", None) or ()
            if not needed:
                missing.append(f"{model._meta.label}.{action}: no permissions=")
            for permission in needed:
                if not hasattr(model_admin, f"has_{permission}_permission"):
                    missing.append(f"{model._meta.label}.{action}: no has_{permission}_permission")
    assert missing == []


def test_view_only_staff_get_no_action_and_move_no_money(world):
    staff = _no_perm_staff()
    staff.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    staff = User.objects.get(pk=staff.pk)  # fresh permission cache
    client = Client()
    client.force_login(staff)
    request = RequestFactory().get("/admin/")
    request.user = staff
    offered = {
        model._meta.label: sorted(model_admin.get_actions(request))
        for model, model_admin in admin.site._registry.items()
        if model_admin.get_actions(request)
    }
    assert offered == {}
    before = _snapshot()
    for model, model_admin in admin.site._registry.items():
        row = model._default_manager.order_by("pk").first()
        changelist = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for _func, action, _desc in model_admin._get_base_actions():
            client.post(
                changelist,
                {
                    **POST_DATA,
                    "action": action,
                    "index": "0",
                    helpers.ACTION_CHECKBOX_NAME: [str(row.pk)] if row is not None else [],
                },
            )
    assert client.get(reverse("admin:ledger_topup_add")).status_code == 403
    assert client.post(reverse("admin:ledger_redemptionbatch_add"), POST_DATA).status_code == 403
    assert _snapshot() == before


def test_an_operator_with_the_add_permission_still_grants_and_generates(world):
    staff = _no_perm_staff()
    staff.user_permissions.set(
        Permission.objects.filter(
            codename__in=["add_topup", "view_topup", "add_redemptionbatch", "view_redemptionbatch"]
        )
    )
    client = Client()
    client.force_login(User.objects.get(pk=staff.pk))
    response = client.post(reverse("admin:ledger_topup_add"), POST_DATA)
    assert response.status_code == 302
    assert TopUp.objects.filter(external_id="grant:sweep-grant").exists()
    batch = RedemptionBatch.objects.get(name="seed")
    response = client.post(
        reverse("admin:ledger_redemptionbatch_changelist"),
        {"action": "generate_like", helpers.ACTION_CHECKBOX_NAME: [str(batch.pk)], "index": "0"},
    )
    assert response.status_code == 200
    assert RedemptionBatch.objects.filter(name="seed (again)").exists()
