"""Operator admin: users (email login), organizations with their members, invitations, and a
read-only audit log."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.db.models import Count

from accounts.models import AuditEvent, Invitation, Membership, Organization, User


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
