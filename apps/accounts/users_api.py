"""HTTP endpoints of users and roles (mounted at /api/v1 by pms/api.py).

Reads need `users.view` (admins, the `support` role), writes `users.manage` (admins), as
apps/common/policy.py grants them. Without the permission a caller gets 403 on the
collections (`/users`) and 404 on every item, so user ids cannot be probed. DELETE
deactivates: the row and everything that references it stay.
"""

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from ninja import Path, Query, Router, Schema, Status
from pydantic import ConfigDict, Field

from apps.accounts import selectors
from apps.accounts.models import User
from apps.accounts.services import (
    Principal,
    user_create,
    user_deactivate,
    user_role_add,
    user_role_remove,
    user_update,
)
from apps.common import policy
from apps.common.http import token_auth
from apps.common.pagination import Page, PageParams, paginate

router = Router(tags=["users"], auth=token_auth)

ADMINS_ONLY = "Only admins manage users."

UserTypeName = Literal["tenant", "landlord", "property_manager", "admin"]
ROLE_PATTERN = r"^[a-z][a-z0-9_]{0,49}$"
# A plain shape check (no email-validator dependency); uniqueness is checked case-insensitively.
Email = Annotated[str, Field(min_length=3, max_length=255, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
RoleName = Annotated[str, Field(pattern=ROLE_PATTERN, description="lower_snake_case, e.g. maintenance_staff")]


class StrictIn(Schema):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class UserIn(StrictIn):
    email: Email
    password: str = Field(min_length=8, max_length=1024)
    firstName: str = Field(min_length=1, max_length=100)
    lastName: str = Field(min_length=1, max_length=100)
    userType: UserTypeName
    phone: str | None = Field(None, max_length=20)
    profileImageUrl: str | None = Field(None, max_length=255)
    roles: list[RoleName] = Field(default_factory=list, max_length=20)


class UserPatch(StrictIn):
    """Only the fields sent change; fields typed without `null` refuse an explicit null."""

    email: Email = None  # type: ignore[assignment]
    password: str = Field(None, min_length=8, max_length=1024)  # type: ignore[assignment]
    firstName: str = Field(None, min_length=1, max_length=100)  # type: ignore[assignment]
    lastName: str = Field(None, min_length=1, max_length=100)  # type: ignore[assignment]
    userType: UserTypeName = None  # type: ignore[assignment]
    isActive: bool = None  # type: ignore[assignment]
    phone: str | None = Field(None, max_length=20)
    profileImageUrl: str | None = Field(None, max_length=255)


class UserOut(Schema):
    id: UUID
    email: str
    firstName: str
    lastName: str
    phone: str | None
    userType: str
    isActive: bool
    profileImageUrl: str | None
    roles: list[str]
    lastLogin: datetime | None
    createdAt: datetime | None
    updatedAt: datetime | None


class UserFilters(Schema):
    userType: UserTypeName | None = None
    isActive: bool | None = None
    q: str | None = Field(None, max_length=200, description="Words to find in email, first or last name.")


class RoleIn(StrictIn):
    roleName: RoleName


class RolesOut(Schema):
    userId: UUID
    roles: list[str]


def user_out(user: User) -> dict[str, Any]:
    return {
        "id": user.pk,
        "email": user.email,
        "firstName": user.first_name,
        "lastName": user.last_name,
        "phone": user.phone,
        "userType": user.user_type,
        "isActive": user.is_active is not False,
        "profileImageUrl": user.profile_image_url,
        "roles": sorted(role.role_name for role in user.roles.all()),
        "lastLogin": user.last_login,
        "createdAt": user.created_at,
        "updatedAt": user.updated_at,
    }


VIEW, MANAGE = policy.FAMILIES["users"]["view"], policy.FAMILIES["users"]["manage"]


def admin_for_collection(request: HttpRequest, permission: str = MANAGE) -> Principal:
    """The caller holding `permission`; 403 for anyone else (the collection's existence is no secret)."""
    caller: Principal = request.auth  # type: ignore[attr-defined]
    policy.require(caller, permission, ADMINS_ONLY)
    return caller


def admin_for_item(request: HttpRequest, permission: str = MANAGE) -> Principal:
    """The caller holding `permission`; 404 for anyone else, so user ids cannot be probed."""
    caller: Principal = request.auth  # type: ignore[attr-defined]
    policy.require_for_item(caller, permission)
    return caller


@router.get("/users", response=Page[UserOut])
async def list_users(request: HttpRequest, filters: Query[UserFilters], page: Query[PageParams]) -> dict[str, Any]:
    """Users by email; filter by type, active flag, words in email or name (`users.view`)."""
    admin_for_collection(request, VIEW)
    rows = selectors.user_list(user_type=filters.userType, is_active=filters.isActive, q=filters.q)
    return await sync_to_async(paginate)(rows, page, user_out)


@router.post("/users", response={201: UserOut})
async def create_user(request: HttpRequest, payload: UserIn) -> Status[dict[str, Any]]:
    """Create a user with a hashed password and optional roles (admins); 409 when the email is taken."""
    admin_for_collection(request)

    def run() -> dict[str, Any]:
        user = user_create(data=payload.model_dump())
        return user_out(selectors.user_get(user_id=user.pk))

    return Status(201, await sync_to_async(run)())


@router.get("/users/{user_id}", response=UserOut)
async def get_user(request: HttpRequest, user_id: UUID) -> dict[str, Any]:
    """One user with their roles (`users.view`)."""
    admin_for_item(request, VIEW)
    return await sync_to_async(lambda: user_out(selectors.user_get(user_id=user_id)))()


@router.patch("/users/{user_id}", response=UserOut)
async def update_user(request: HttpRequest, user_id: UUID, payload: UserPatch) -> dict[str, Any]:
    """Change a user (admins); a new password is hashed; 409 when the email is taken.

    A new password revokes the user's sessions (an admin changing their own keeps the one
    calling); `isActive: false` revokes them all. Their sockets close 4409 at once."""
    caller = admin_for_item(request)

    def run() -> dict[str, Any]:
        selectors.user_get(user_id=user_id)
        user_update(
            actor_id=caller.user_id,
            actor_session_id=caller.session_id,
            user_id=user_id,
            data=payload.model_dump(exclude_unset=True),
        )
        return user_out(selectors.user_get(user_id=user_id))

    return await sync_to_async(run)()


@router.delete("/users/{user_id}", response={204: None})
async def deactivate_user(request: HttpRequest, user_id: UUID) -> Status[None]:
    """Deactivate a user (admins): they can no longer sign in, their history stays."""
    caller = admin_for_item(request)

    def run() -> None:
        selectors.user_get(user_id=user_id)
        user_deactivate(actor_id=caller.user_id, user_id=user_id)

    await sync_to_async(run)()
    return Status(204, None)


@router.get("/users/{user_id}/roles", response=RolesOut)
async def list_roles(request: HttpRequest, user_id: UUID) -> dict[str, Any]:
    """The user's roles (`users.view`)."""
    admin_for_item(request, VIEW)

    def run() -> dict[str, Any]:
        selectors.user_get(user_id=user_id)
        return {"userId": user_id, "roles": selectors.user_role_names(user_id=user_id)}

    return await sync_to_async(run)()


@router.post("/users/{user_id}/roles", response={201: RolesOut})
async def add_role(request: HttpRequest, user_id: UUID, payload: RoleIn) -> Status[dict[str, Any]]:
    """Give the user a role (admins); 409 if they hold it already. Their cached permissions are dropped."""
    admin_for_item(request)

    def run() -> dict[str, Any]:
        selectors.user_get(user_id=user_id)
        user_role_add(user_id=user_id, role_name=payload.roleName)
        return {"userId": user_id, "roles": selectors.user_role_names(user_id=user_id)}

    return Status(201, await sync_to_async(run)())


@router.delete("/users/{user_id}/roles/{role_name}", response={204: None})
async def remove_role(request: HttpRequest, user_id: UUID, role_name: str = Path(..., max_length=50)) -> Status[None]:
    """Take a role away (admins); 404 if the user does not hold it."""
    admin_for_item(request)

    def run() -> None:
        selectors.user_get(user_id=user_id)
        user_role_remove(user_id=user_id, role_name=role_name)

    await sync_to_async(run)()
    return Status(204, None)
