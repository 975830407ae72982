"""Reads of users and their roles (the users screens and API; `actor_current` for the access policy)."""

from typing import Any

from django.db.models import Q, QuerySet

from apps.accounts.models import User, UserRole
from apps.common.policy import Actor
from apps.common.visibility import not_found


def actor_current(*, user_id: Any) -> Actor | None:
    """The user as PostgreSQL has them now (type and roles), for an access decision; None when
    unknown or deactivated. Sockets decide with this, never with their connect-time copy."""
    user_type = User.objects.filter(pk=user_id, is_active=True).values_list("user_type", flat=True).first()
    if user_type is None:
        return None
    roles = tuple(sorted(UserRole.objects.filter(user_id=user_id).values_list("role_name", flat=True)))
    return Actor(user_id=str(user_id), user_type=user_type, roles=roles)


def user_list(*, user_type: str | None = None, is_active: bool | None = None, q: str | None = None) -> QuerySet[User]:
    """Users by email, filtered by type, active flag and words in email or name."""
    rows = User.objects.all()
    if user_type is not None:
        rows = rows.filter(user_type=user_type)
    if is_active is not None:
        rows = rows.filter(is_active=is_active)
    for word in (q or "").split():
        rows = rows.filter(Q(email__icontains=word) | Q(first_name__icontains=word) | Q(last_name__icontains=word))
    return rows.prefetch_related("roles").order_by("email", "pk")


def user_get(*, user_id: Any) -> User:
    """The user with their roles; not_found when unknown."""
    user = User.objects.filter(pk=user_id).prefetch_related("roles").first()
    if user is None:
        raise not_found()
    return user


def user_role_names(*, user_id: Any) -> list[str]:
    return sorted(UserRole.objects.filter(user_id=user_id).values_list("role_name", flat=True))
