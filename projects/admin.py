"""Operators' view of projects and API keys. Key secrets are never stored, so never shown;
revocation goes through `key_revoke` so the proxy's key cache hears of it at once."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, Q

from accounts.admin_audit import AuditedAdminMixin
from projects.models import ApiKey, Project
from projects.services import KEY_REVOKED_HOOKS, key_revoke, project_archive


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ["prefix", "name", "rpm_limit", "tpm_limit", "expires_at", "revoked_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # keys are created in the dashboard or by `create_key`, shown once


@admin.register(Project)
class ProjectAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "org", "environment", "active_keys", "created_at", "archived_at"]
    list_filter = ["environment", ("archived_at", admin.EmptyFieldListFilter), "org"]
    search_fields = ["name", "org__name", "org__slug"]
    list_select_related = ["org"]
    raw_id_fields = ["org"]
    readonly_fields = ["created_at", "archived_at"]
    date_hierarchy = "created_at"
    inlines = [ApiKeyInline]
    actions = ["archive_projects"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(_active_keys=Count("api_keys", filter=Q(api_keys__revoked_at__isnull=True)))
        )

    @admin.display(description="Active keys", ordering="_active_keys")
    def active_keys(self, obj) -> int:
        return obj._active_keys

    @admin.action(
        description="Archive the selected projects (revokes their keys)", permissions=["change"]
    )
    def archive_projects(self, request, queryset):
        for project in queryset:
            project_archive(project=project, actor=request.user)
        self.message_user(request, f"{queryset.count()} project(s) archived.", messages.SUCCESS)


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = [
        "prefix",
        "name",
        "project",
        "org",
        "rpm_limit",
        "tpm_limit",
        "expires_at",
        "revoked_at",
        "created_at",
    ]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "org", "project"]
    search_fields = ["prefix", "name", "project__name", "org__name", "org__slug"]
    list_select_related = ["project", "org"]
    raw_id_fields = ["org", "project", "created_by"]
    readonly_fields = ["prefix", "key_hash", "created_by", "created_at", "revoked_at"]
    date_hierarchy = "created_at"
    actions = ["revoke_keys"]

    def has_add_permission(self, request) -> bool:
        return False  # a key's secret must be shown to its owner once; the admin cannot

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        # New limits or models apply at once in every proxy process, as with `key_update`.
        key_hash = obj.key_hash
        transaction.on_commit(lambda: [hook(key_hash) for hook in KEY_REVOKED_HOOKS])

    @admin.action(
        description="Revoke the selected keys (they stop working at once)", permissions=["change"]
    )
    def revoke_keys(self, request, queryset):
        count = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            key_revoke(api_key=api_key, actor=request.user)
            count += 1
        self.message_user(request, f"{count} key(s) revoked.", messages.SUCCESS)
