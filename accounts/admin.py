"""Operator admin: users (email login), organizations with their members, invitations, and a
read-only audit log."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import (
    AdminPasswordChangeForm,
    AdminUserCreationForm,
    UserChangeForm,
)
from django.db.models import Count

from accounts.models import ApiToken, AuditEvent, Invitation, Membership, Organization, User
from accounts.tokens import TokenReason, api_token_revoke, api_tokens_revoke_for_user


class UserCreateForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)

    def clean_email(self) -> str:
        # Stored lower-case like every other path; the case-insensitive unique constraint
        # then reports a duplicate through the model's validation.
        return self.cleaned_data["email"].strip().lower()


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


class PasswordSetForm(AdminPasswordChangeForm):
    def save(self, commit=True):
        user = super().save(commit=commit)
        # A new password ends every management-API token of the user, as on the dashboard.
        api_tokens_revoke_for_user(user=user, reason=TokenReason.PASSWORD_CHANGE)
        return user


class MembershipOfUserInline(admin.TabularInline):
    model = Membership
    fk_name = "user"
    extra = 0
    raw_id_fields = ("org",)
    fields = ("org", "role", "created_at")
    readonly_fields = ("created_at",)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserEditForm
    add_form = UserCreateForm
    change_password_form = PasswordSetForm
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("name",)}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "usable_password", "password1", "password2"),
            },
        ),
    )
    list_display = ("email", "name", "is_staff", "is_active", "date_joined", "last_login")
    list_filter = ("is_staff", "is_superuser", "is_active", "date_joined")
    search_fields = ("email", "name")
    ordering = ("email",)
    inlines = (MembershipOfUserInline,)

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else ()  # the add page is email + password only


class MembershipInline(admin.TabularInline):
    model = Membership
    fk_name = "org"
    extra = 0
    raw_id_fields = ("user",)
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "price_multiplier", "member_count", "created_at")
    list_filter = ("created_at", "price_multiplier")
    search_fields = ("name", "slug", "memberships__user__email")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("created_at",)
    date_hierarchy = "created_at"
    inlines = (MembershipInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_member_count=Count("memberships"))

    @admin.display(description="Members", ordering="_member_count")
    def member_count(self, obj: Organization) -> int:
        return obj._member_count


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "org", "role", "created_at")
    list_filter = ("role", "created_at")
    search_fields = ("user__email", "org__name", "org__slug")
    list_select_related = ("user", "org")
    raw_id_fields = ("user", "org")


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ("email", "org", "role", "invited_by", "created_at", "expires_at", "accepted_at")
    list_filter = ("role", "created_at", "expires_at", "accepted_at")
    search_fields = ("email", "org__name", "org__slug")
    list_select_related = ("org", "invited_by")
    raw_id_fields = ("org", "invited_by")
    # The token hash is useless to an operator and the token itself is never stored.
    exclude = ("token_hash",)
    readonly_fields = ("created_at", "accepted_at")

    def has_add_permission(self, request) -> bool:
        return False  # invitations go through the service, which emails the one-time link


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit log is evidence, so nobody edits or deletes it here."""

    list_display = ("created_at", "org", "actor", "action", "target_type", "target_id")
    list_filter = ("action", "target_type", ("org", admin.RelatedOnlyFieldListFilter), "created_at")
    search_fields = ("action", "target_id", "org__name", "org__slug", "actor__email")
    list_select_related = ("org", "actor")
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = (
        "org",
        "actor",
        "action",
        "target_type",
        "target_id",
        "changes",
        "created_at",
    )

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Management-API tokens: only their hash is stored, so nothing here can show or make one
    (users create them, shown once); operators see them and revoke them."""

    list_display = (
        "prefix",
        "name",
        "user",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "revoked_reason",
    )
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "revoked_reason", "expires_at")
    search_fields = ("prefix", "name", "user__email")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    exclude = ("token_hash",)
    readonly_fields = (
        "user",
        "name",
        "prefix",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "revoked_reason",
    )
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ["revoke_tokens"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoked tokens stay, as evidence of who could call the API when

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke_tokens(self, request, queryset):
        count = 0
        for token in queryset.filter(revoked_at__isnull=True):
            api_token_revoke(token=token, actor=request.user, reason=TokenReason.OPERATOR)
            count += 1
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)
