"""Authentication backend: email (case-insensitive) and password, active users only."""

from typing import Any

from django.contrib.auth.backends import BaseBackend
from django.http import HttpRequest

from apps.accounts.models import User


class EmailBackend(BaseBackend):
    """Checks an email and password; runs the hasher even for unknown emails (no timing hint)."""

    def authenticate(
        self, request: HttpRequest | None, email: str | None = None, password: str | None = None, **kwargs: Any
    ) -> User | None:
        if email is None:
            # Django's admin login form sends the email as `username`.
            email = kwargs.get("username") or kwargs.get(User.USERNAME_FIELD)
        if not email or password is None:
            return None
        try:
            user = User.objects.get(email__iexact=email.strip())
        except User.DoesNotExist:
            User().set_password(password)
            return None
        if user.check_password(password) and user.is_active:
            return user
        return None

    def get_user(self, user_id: Any) -> User | None:
        try:
            user = User.objects.get(pk=user_id)
        except (User.DoesNotExist, ValueError, TypeError):
            return None
        return user if user.is_active else None
