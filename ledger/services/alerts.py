"""Budget alert emails to the organization's owners (console backend unless EMAIL_URL is set)."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail

from accounts.models import Membership, Role
from ledger.models import BudgetAlert


def alert_email_send(*, alert_id: int) -> int:
    alert = BudgetAlert.objects.select_related(
        "budget", "budget__project", "budget__api_key", "org"
    ).get(pk=alert_id)
    owners = list(
        Membership.objects.for_org(alert.org)
        .filter(role=Role.OWNER)
        .values_list("user__email", flat=True)
    )
    if not owners:
        return 0
    budget = alert.budget
    owner = f"key {budget.api_key}" if budget.api_key_id else f"project {budget.project}"
    subject = (
        f"[tokenforge] {owner} reached {int(alert.threshold * 100)}% of its {budget.period} budget"
    )
    body = (
        f"{owner} in {alert.org.name} has spent {alert.spent.normalize()} {budget.currency} "
        f"of its {budget.amount.normalize()} {budget.currency} {budget.period} budget "
        f"(period starting {alert.period_start})."
    )
    return send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, owners)
