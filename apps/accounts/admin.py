"""Admin for users (with their roles inline) and sessions (revoke)."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.accounts import services
from apps.accounts.models import Session, User, UserRole
from apps.common.service_admin import ServiceWriteAdmin


class UserAdminForm(forms.ModelForm):
    """Edits a user; a filled `new_password` is hashed into `password_hash`."""

    new_password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the current password.",
    )

    class Meta:
        model = User
        fields = [
            "email",
            "first_name",
            "last_name",
            "phone",
            "user_type",
            "is_active",
            "profile_image_url",
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.instance._state.adding and not cleaned.get("new_password"):
            self.add_error("new_password", "A new user needs a password.")
        return cleaned

    def save(self, commit: bool = True) -> User:
        user: User = super().save(commit=False)
        if self.cleaned_data.get("new_password"):
            user.set_password(self.cleaned_data["new_password"])
        if commit:
            user.save()
        return user


class UserRoleInline(admin.TabularInline):
    model = UserRole
    extra = 0


@admin.register(User)
class UserAdmin(ServiceWriteAdmin):
    form = UserAdminForm
    list_display = ["email", "first_name", "last_name", "user_type", "is_active", "last_login", "created_at"]
    list_filter = ["user_type", "is_active", "created_at", "last_login"]
    search_fields = ["email", "first_name", "last_name", "phone"]
    ordering = ["email"]
    readonly_fields = ["last_login", "created_at", "updated_at"]
    inlines = [UserRoleInline]

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        """Through `user_admin_save`: a change drops the user's caches (type, roles, sockets re-checked)
        and a password reset or a deactivation here deletes every session of the user (the
        PostgreSQL trigger: the admin's own Django session is not one) and closes their sockets
        as soon as it commits."""
        services.user_admin_save(user=obj, created=not change)

    def service_delete(self, request: HttpRequest, obj: User) -> None:
        services.user_admin_delete(user=obj)

    def inline_save(self, request: HttpRequest, obj: Any) -> None:
        services.user_role_admin_save(role=obj)

    def inline_delete(self, request: HttpRequest, obj: Any) -> None:
        services.user_role_admin_delete(role=obj)


@admin.register(UserRole)
class UserRoleAdmin(ServiceWriteAdmin):
    list_display = ["role_name", "user"]
    list_filter = ["role_name"]
    search_fields = ["role_name", "user__email"]
    raw_id_fields = ["user"]
    list_select_related = ["user"]

    def service_save(self, request: HttpRequest, obj: UserRole) -> None:
        services.user_role_admin_save(role=obj)

    def service_delete(self, request: HttpRequest, obj: UserRole) -> None:
        services.user_role_admin_delete(role=obj)


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    """Sessions can be inspected and revoked (deleted), never created or edited here."""

    list_display = ["id", "user", "ip_address", "created_at", "expires_at"]
    list_filter = ["created_at", "expires_at"]
    search_fields = ["user__email", "ip_address", "user_agent"]
    list_select_related = ["user"]
    readonly_fields = ["id", "user", "token", "expires_at", "created_at", "ip_address", "user_agent"]
    date_hierarchy = "created_at"
    actions = ["revoke_sessions"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Revoke selected sessions (close their sockets)")
    def revoke_sessions(self, request: HttpRequest, queryset: QuerySet[Session]) -> None:
        from asgiref.sync import async_to_sync

        from apps.accounts.services import asession_revoke

        count = 0
        for session_id in list(queryset.values_list("pk", flat=True)):
            async_to_sync(asession_revoke)(session_id=str(session_id))
            count += 1
        self.message_user(request, f"Revoked {count} session(s).", messages.SUCCESS)
