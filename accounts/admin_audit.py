"""Admin edits are changes too: operators' saves and deletes go to the audit log.

Django's own LogEntry keeps only a message; the audit log keeps which fields changed and
their new values (secret fields only as "changed"), next to the changes made through services.
"""

from __future__ import annotations

from typing import Any

from accounts.audit import audit_record

SECRET_FIELD_HINTS = ("key", "secret", "password", "token")


def _org_of(obj: Any):
    return getattr(obj, "org", None)


def _changed_values(form, obj) -> dict[str, str]:
    changes: dict[str, str] = {}
    for name in getattr(form, "changed_data", []) or []:
        if any(hint in name for hint in SECRET_FIELD_HINTS):
            changes[name] = "changed"
            continue
        value = getattr(obj, name, form.cleaned_data.get(name))
        if hasattr(value, "all") and callable(value.all):
            value = [str(item) for item in value.all()]
        changes[name] = str(value)
    return changes


class AuditedAdminMixin:
    """Mix into a ModelAdmin whose model's changes must show in the audit log."""

    audit_prefix = ""

    def _audit_action(self, verb: str) -> str:
        prefix = self.audit_prefix or self.model._meta.app_label
        return f"{prefix}.{self.model._meta.model_name}.{verb}"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit_record(
            org=_org_of(obj),
            actor=request.user,
            action=self._audit_action("change" if change else "add"),
            target=obj,
            changes=_changed_values(form, obj),
        )

    def delete_model(self, request, obj):
        org, pk, label = _org_of(obj), obj.pk, str(obj)
        super().delete_model(request, obj)
        audit_record(
            org=org,
            actor=request.user,
            action=self._audit_action("delete"),
            target=pk,
            changes={"deleted": label},
        )

    def delete_queryset(self, request, queryset):
        for obj in list(queryset):
            self.delete_model(request, obj)

    def save_formset(self, request, form, formset, change):
        instances = formset.save(commit=False)
        for obj in formset.deleted_objects:
            label, pk = str(obj), obj.pk
            obj.delete()
            audit_record(
                org=_org_of(obj),
                actor=request.user,
                action=f"{self.audit_prefix or obj._meta.app_label}.{obj._meta.model_name}.delete",
                target=pk,
                changes={"deleted": label},
            )
        changed_forms = {id(f.instance): f for f in formset.forms if f.has_changed()}
        for obj in instances:
            is_new = obj.pk is None
            obj.save()
            sub = changed_forms.get(id(obj))
            audit_record(
                org=_org_of(obj),
                actor=request.user,
                action=(
                    f"{self.audit_prefix or obj._meta.app_label}.{obj._meta.model_name}."
                    f"{'add' if is_new else 'change'}"
                ),
                target=obj,
                changes=_changed_values(sub, obj) if sub is not None else {},
            )
        formset.save_m2m()
