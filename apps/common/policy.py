"""The one access policy: who may do which `<area>.<action>`, over which objects, and see which topic.

Every authorization decision of the HTTP API (selectors and services), the socket
subscriptions (`apps/messaging/topic_access.py`) and the re-check after an access change
reads this module, and nothing else decides who may do what:

- `GRANTS_BY_USER_TYPE` and `GRANTS_BY_ROLE` are the table: the permission strings
  (`<area>.<action>`) each user type and each role holds, each with the scope of objects
  it covers. A user holds the union of their type's and their roles' grants; where two
  grant the same permission, the wider scope wins. `/auth/me` lists these strings and
  `user:permissions:{userId}` caches them.
- A string ending in `_own` (`leases.view_own`) is the same permission as the string
  without it, restricted to the holder's own objects: checks always ask for the plain
  string (`leases.view`) and get the scope `OWN` from it.
- The scopes are the visibility rules, written once (`visible_q`):
  `ALL` everything (admins, and the back-office roles in their area);
  `STAFF` everything under the properties the user owns or manages (a landlord or property
  manager holding both links sees both);
  `OWNED` only the properties the user owns (what a landlord alone may change);
  `OWN` the user's own tenant records and what hangs off them (a tenant's leases, units,
  transactions, requests, applications).
- `FAMILIES` names the permission each endpoint family checks per action; the role x
  family test (tests/apps/test_policy_matrix.py) is parametrized from it and from the
  grants, so the table, the server and the proof cannot drift apart.
- `TOPIC_PERMISSIONS` names the permission a socket needs per topic family.

Decisions are always made for the user's CURRENT type and roles: HTTP principals are
re-read from PostgreSQL after a role or type change drops their cached sessions, and the
socket authorizer loads the user afresh on every decision it does not find cached (the
cache is dropped by the same change), never from what a socket saw at connect time.

This module imports no models (its filters are built from field paths), so every app,
and `apps/common` itself, can use it.
"""

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from django.db.models import Q

from realtime import errors, topics
from realtime.errors import ProtocolError

NOT_FOUND = "Not found."
NOT_PERMITTED = "You do not have the permission {permission}."


class Scope(IntEnum):
    """The objects a grant covers; a wider scope compares greater."""

    NONE = 0
    OWN = 1
    OWNED = 2
    STAFF = 3
    ALL = 4


class Subject(Protocol):
    """Whoever asks: a session's principal, or a user loaded afresh for a socket decision."""

    @property
    def user_id(self) -> str: ...

    @property
    def user_type(self) -> str: ...

    @property
    def roles(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Actor:
    """A `Subject` read from PostgreSQL just now (the socket path builds one per decision)."""

    user_id: str
    user_type: str
    roles: tuple[str, ...] = ()

    @property
    def is_admin(self) -> bool:
        return self.user_type == ADMIN


TENANT, LANDLORD, PROPERTY_MANAGER, ADMIN = "tenant", "landlord", "property_manager", "admin"

# --- the table ------------------------------------------------------------------------------

_TENANT: dict[str, Scope] = {
    "profile.view": Scope.OWN,
    "chat.use": Scope.OWN,
    "notifications.view": Scope.OWN,
    "properties.view_own": Scope.OWN,
    "units.view_own": Scope.OWN,
    "tenants.view_own": Scope.OWN,
    "leases.view_own": Scope.OWN,
    "transactions.view_own": Scope.OWN,
    "maintenance.create": Scope.OWN,
    "maintenance.view_own": Scope.OWN,
    "hud.apply": Scope.OWN,
    "hud.view_own": Scope.OWN,
    "documents.view_own": Scope.OWN,
}

_PROPERTY_STAFF: dict[str, Scope] = {
    "profile.view": Scope.OWN,
    "chat.use": Scope.OWN,
    "notifications.view": Scope.OWN,
    "properties.view": Scope.STAFF,
    "units.view": Scope.STAFF,
    "units.manage": Scope.STAFF,
    "tenants.view": Scope.STAFF,
    "tenants.manage": Scope.STAFF,
    "leases.view": Scope.STAFF,
    "leases.manage": Scope.STAFF,
    "transactions.view": Scope.STAFF,
    "transactions.manage": Scope.STAFF,
    "maintenance.create": Scope.STAFF,
    "maintenance.view": Scope.STAFF,
    "maintenance.view_own": Scope.OWN,
    "maintenance.manage": Scope.STAFF,
    "workorders.view": Scope.STAFF,
    "workorders.update": Scope.STAFF,
    # Vendors are one shared directory: whoever may read them reads all of them.
    "vendors.view": Scope.ALL,
    "vendors.manage": Scope.ALL,
    "hud.apply": Scope.STAFF,
    "hud.view": Scope.STAFF,
    "hud.view_own": Scope.OWN,
    "hud.manage": Scope.STAFF,
    "subscriptions.view_own": Scope.OWN,
    "subscriptions.manage_own": Scope.OWN,
    # Documents follow the entity they hang off (a lease, a request, an application).
    "documents.view": Scope.STAFF,
}

_LANDLORD = _PROPERTY_STAFF | {
    "properties.create": Scope.OWNED,
    "properties.manage": Scope.OWNED,
}

_ADMIN_ONLY = (
    "admin.access",
    "users.view",
    "users.manage",
    "system.broadcast",
    "subscriptions.admin",
    "subscriptions.view",
    "subscriptions.manage",
    "hud.admin",
    "amenities.manage",
)
_ADMIN: dict[str, Scope] = dict.fromkeys([*(p for p in _LANDLORD if not p.endswith("_own")), *_ADMIN_ONLY], Scope.ALL)

GRANTS_BY_USER_TYPE: Mapping[str, Mapping[str, Scope]] = {
    TENANT: _TENANT,
    LANDLORD: _LANDLORD,
    PROPERTY_MANAGER: _PROPERTY_STAFF,
    ADMIN: _ADMIN,
}

# Who may be made a property's owner: the types that may create properties (landlords, admins);
# its manager: the types whose sight of properties is the staff scope (landlords, property managers).
OWNER_TYPES = frozenset(name for name, grants in GRANTS_BY_USER_TYPE.items() if "properties.create" in grants)
MANAGER_TYPES = frozenset(
    name for name, grants in GRANTS_BY_USER_TYPE.items() if grants.get("properties.view") is Scope.STAFF
)

# The user types that may hold a subscription (a landlord or property manager pays for their units).
SUBSCRIBER_TYPES = frozenset(
    name for name, grants in GRANTS_BY_USER_TYPE.items() if "subscriptions.manage_own" in grants
)

# Roles add to the user type's grants, over the whole platform in their area (no column ties
# an accountant, a support agent or a maintenance worker to a property). Unknown roles add nothing.
GRANTS_BY_ROLE: Mapping[str, Mapping[str, Scope]] = {
    "maintenance_staff": {
        "maintenance.view": Scope.ALL,
        "maintenance.work": Scope.ALL,
        "workorders.view": Scope.ALL,
        "workorders.update": Scope.ALL,
        "vendors.view": Scope.ALL,
    },
    "accountant": {"transactions.view": Scope.ALL, "transactions.manage": Scope.ALL},
    "support": {"users.view": Scope.ALL, "chat.use": Scope.OWN},
}

# Endpoint family -> action -> the permission its endpoints check. A family's collection
# answers 403 to a user holding the permission in no scope; its items answer 404 outside
# the scope (so ids cannot be probed).
FAMILIES: Mapping[str, Mapping[str, str]] = {
    "properties": {"view": "properties.view", "create": "properties.create", "manage": "properties.manage"},
    "units": {"view": "units.view", "manage": "units.manage"},
    "leases": {"view": "leases.view", "manage": "leases.manage"},
    "tenants": {"view": "tenants.view", "manage": "tenants.manage"},
    "transactions": {"view": "transactions.view", "manage": "transactions.manage"},
    "maintenance": {"view": "maintenance.view", "create": "maintenance.create", "manage": "maintenance.manage"},
    "workorders": {"view": "workorders.view", "update": "workorders.update"},
    "vendors": {"view": "vendors.view", "manage": "vendors.manage"},
    "hud": {"view": "hud.view", "apply": "hud.apply", "manage": "hud.manage", "admin": "hud.admin"},
    "subscriptions": {"view": "subscriptions.view", "manage": "subscriptions.manage"},
    "users": {"view": "users.view", "manage": "users.manage"},
    "documents": {"view": "documents.view"},
    "broadcasts": {"send": "system.broadcast"},
    "admin": {"access": "admin.access"},
}

# Topic family -> the permission a socket needs; `topic_access` narrows it to the topic's object.
TOPIC_PERMISSIONS: Mapping[str, str] = {
    topics.CHAT: "chat.use",
    topics.MAINTENANCE: "maintenance.view",
    topics.PROPERTY: "properties.view",
    topics.UNIT: "units.view",
    topics.LEASE: "leases.view",
}

OWN_SUFFIX = "_own"


# --- decisions -------------------------------------------------------------------------------


def grants_of(user_type: str, roles: tuple[str, ...] | list[str]) -> dict[str, Scope]:
    """Every permission string a user of `user_type` holding `roles` has, with its widest scope."""
    granted: dict[str, Scope] = dict(GRANTS_BY_USER_TYPE.get(user_type, {}))
    for role in roles:
        for permission, scope in GRANTS_BY_ROLE.get(role, {}).items():
            granted[permission] = max(scope, granted.get(permission, Scope.NONE))
    return granted


def permissions_for(user_type: str, roles: tuple[str, ...] | list[str]) -> frozenset[str]:
    """The permission strings of a user of `user_type` holding `roles` (what `/auth/me` lists)."""
    return frozenset(grants_of(user_type, roles))


def scope_of(subject: Subject, permission: str) -> Scope:
    """The widest scope in which `subject` holds `permission` (its `_own` variant gives OWN)."""
    return _scope(subject.user_type, tuple(subject.roles), permission)


@functools.lru_cache(maxsize=4096)
def _scope(user_type: str, roles: tuple[str, ...], permission: str) -> Scope:
    # A function of the grant tables alone, which never change while the process runs; a burst
    # of socket decisions asks it two or three times per decision (0.9-1.9 -> 0.2 µs a call).
    granted = grants_of(user_type, roles)
    own = Scope.OWN if permission + OWN_SUFFIX in granted else Scope.NONE
    return max(granted.get(permission, Scope.NONE), own)


def allows(subject: Subject, permission: str) -> bool:
    """`subject` holds `permission` in some scope."""
    return scope_of(subject, permission) is not Scope.NONE


def sees_all(subject: Subject, permission: str) -> bool:
    """`subject` holds `permission` over every object (no visibility filter applies)."""
    return scope_of(subject, permission) is Scope.ALL


def forbidden(message: str) -> ProtocolError:
    return ProtocolError(errors.FORBIDDEN, message)


def not_found() -> ProtocolError:
    return ProtocolError(errors.NOT_FOUND, NOT_FOUND)


def require(subject: Subject, permission: str, message: str | None = None) -> Scope:
    """The subject's scope for `permission`; `forbidden` (403, with `message`) when they hold it in none."""
    scope = scope_of(subject, permission)
    if scope is Scope.NONE:
        raise forbidden(message or NOT_PERMITTED.format(permission=permission))
    return scope


def require_for_item(subject: Subject, permission: str) -> Scope:
    """As `require`, but `not_found` (404), for endpoints on one object whose id must not be probed."""
    scope = scope_of(subject, permission)
    if scope is Scope.NONE:
        raise not_found()
    return scope


# --- visibility, as query filters ----------------------------------------------------------


def property_staff_q(subject: Subject, path: str = "") -> Q:
    """Rows whose property (reached through `path`, e.g. "unit__property__") the subject owns or manages."""
    return Q(**{f"{path}owner_id": subject.user_id}) | Q(**{f"{path}manager_links__user_id": subject.user_id})


def property_owner_q(subject: Subject, path: str = "") -> Q:
    """Rows whose property (reached through `path`) the subject owns."""
    return Q(**{f"{path}owner_id": subject.user_id})


def tenant_user_q(subject: Subject, path: str) -> Q:
    """Rows whose tenant (reached through `path`, e.g. "tenant_links__tenant__") is the subject."""
    return Q(**{f"{path}user_id": subject.user_id})


ACTIVE_LEASE = "active"


def active_lease_tenant_q(subject: Subject, lease_path: str) -> Q:
    """Rows with an ACTIVE lease (reached through `lease_path`: "" from a lease, "leases__" from a
    unit, "units__leases__" from a property) on which the subject is a tenant."""
    return Q(
        **{f"{lease_path}lease_status": ACTIVE_LEASE, f"{lease_path}tenant_links__tenant__user_id": subject.user_id}
    )


NOTHING = Q(pk__in=[])


def visible_q(subject: Subject, permission: str, *, property_path: str | None = "", own: Q | None = None) -> Q | None:
    """The filter of the rows `subject` may act on under `permission`; None means every row.

    `property_path` leads from the model to its property (None: the model has none, so
    staff scopes see nothing); `own` is the filter of the rows that are the subject's own
    (None: no row is, so the OWN scope sees nothing). A holder of a wider scope sees their
    own rows too only where they also hold the `_own` variant (staff see the maintenance
    requests and HUD applications they filed as a tenant elsewhere; a landlord's STAFF
    scope on leases does not reach a lease they rent).
    """
    scope = scope_of(subject, permission)
    if scope is Scope.ALL:
        return None
    if scope is Scope.NONE:
        return NOTHING
    holds_own = scope is Scope.OWN or permission + OWN_SUFFIX in grants_of(subject.user_type, subject.roles)
    found = own if own is not None and holds_own else NOTHING
    if scope is Scope.STAFF and property_path is not None:
        found |= property_staff_q(subject, property_path)
    if scope is Scope.OWNED and property_path is not None:
        found |= property_owner_q(subject, property_path)
    return found


VIEW_TRANSACTIONS = "transactions.view"


def holders_of_all_q(permission: str, path: str = "") -> Q:
    """Users (reached through `path`) who hold `permission` over every object, by type or by role."""
    types = [name for name, grants in GRANTS_BY_USER_TYPE.items() if grants.get(permission) is Scope.ALL]
    roles = [name for name, grants in GRANTS_BY_ROLE.items() if grants.get(permission) is Scope.ALL]
    return Q(**{f"{path}user_type__in": types}) | Q(**{f"{path}roles__role_name__in": roles})


def is_admin(subject: Subject) -> bool:
    """The subject's type is admin (the Django admin site and `admin.access`)."""
    return subject.user_type == ADMIN
