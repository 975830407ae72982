"""The permission strings (`<area>.<action>`) of each user type and role.

This module is the one list: `user:permissions:{userId}` caches the union of the
user's type and roles, and every check reads that cache (PostgreSQL on a miss).
"""

TENANT = frozenset(
    {
        "profile.view",
        "chat.use",
        "notifications.view",
        "leases.view_own",
        "transactions.view_own",
        "maintenance.create",
        "maintenance.view_own",
        "hud.apply",
    }
)

_PROPERTY_STAFF = frozenset(
    {
        "profile.view",
        "chat.use",
        "notifications.view",
        "properties.view",
        "properties.manage",
        "units.manage",
        "tenants.view",
        "tenants.manage",
        "leases.view",
        "leases.manage",
        "transactions.view",
        "transactions.manage",
        "maintenance.view",
        "maintenance.manage",
        "vendors.manage",
        "hud.manage",
    }
)

LANDLORD = _PROPERTY_STAFF | {"properties.create", "subscriptions.manage"}
PROPERTY_MANAGER = _PROPERTY_STAFF

ADMIN = LANDLORD | {"admin.access", "users.manage", "system.broadcast", "subscriptions.admin"}

BY_USER_TYPE: dict[str, frozenset[str]] = {
    "tenant": TENANT,
    "landlord": frozenset(LANDLORD),
    "property_manager": PROPERTY_MANAGER,
    "admin": frozenset(ADMIN),
}

# Roles add to the user type's permissions; an unknown role name adds nothing.
BY_ROLE: dict[str, frozenset[str]] = {
    "maintenance_staff": frozenset({"maintenance.view", "maintenance.work", "workorders.update"}),
    "accountant": frozenset({"transactions.view", "transactions.manage"}),
    "support": frozenset({"users.view", "chat.use"}),
}


def permissions_for(user_type: str, roles: list[str] | tuple[str, ...]) -> frozenset[str]:
    """The permission set of a user of `user_type` holding `roles`."""
    granted = set(BY_USER_TYPE.get(user_type, frozenset()))
    for role in roles:
        granted |= BY_ROLE.get(role, frozenset())
    return frozenset(granted)
