"""Messages and helpers shared by the subscriptions write modules: the 403 errors, the admin check,
API-to-model field renaming and the lock on a user's row."""

from typing import Any

from apps.accounts.models import User
from apps.common import policy
from apps.common.visibility import Caller
from realtime.errors import FORBIDDEN, ProtocolError

ADMIN_ONLY = "Only an admin may do this."


def forbidden(message: str) -> ProtocolError:
    return ProtocolError(FORBIDDEN, message)


def admin_only(caller: Caller) -> None:
    """The plan and feature catalog is written by holders of `subscriptions.admin` (admins)."""
    policy.require(caller, "subscriptions.admin", ADMIN_ONLY)


def model_fields(data: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {names[key]: value for key, value in data.items() if key in names}


def lock_user(user_id: Any) -> User | None:
    """The user's row, locked until commit: serializes writes of one user's subscription state."""
    return User.objects.select_for_update(no_key=True).filter(pk=user_id).first()
