"""Test data made through the project's own models and services."""

import uuid
from typing import Any

from apps.accounts.models import User, UserRole, UserType

DEFAULT_PASSWORD = "correct horse battery staple"


def make_user(*, user_type: str = UserType.TENANT, password: str = DEFAULT_PASSWORD, roles: tuple[str, ...] = (),
              **fields: Any) -> User:
    fields.setdefault("email", f"user-{uuid.uuid4().hex[:12]}@example.test")
    fields.setdefault("first_name", "Test")
    fields.setdefault("last_name", user_type.title())
    user = User.objects.create_user(password=password, user_type=user_type, **fields)
    for role in roles:
        UserRole.objects.create(user=user, role_name=role)
    return user
