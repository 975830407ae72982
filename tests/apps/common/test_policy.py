"""The access policy's decisions as such (no database): scopes, `_own` strings, role merges, filters."""

from django.db.models import Q

from apps.common import policy
from apps.common.policy import Actor, Scope
from realtime.errors import ProtocolError


def actor(user_type: str, *roles: str) -> Actor:
    return Actor(user_id="u1", user_type=user_type, roles=roles)


def test_an_own_string_is_the_plain_permission_in_the_own_scope() -> None:
    tenant = actor("tenant")
    assert "leases.view_own" in policy.permissions_for("tenant", ())
    assert policy.scope_of(tenant, "leases.view") is Scope.OWN
    assert policy.scope_of(tenant, "leases.manage") is Scope.NONE


def test_roles_widen_the_type_and_the_widest_scope_wins() -> None:
    assert policy.scope_of(actor("tenant", "accountant"), "transactions.view") is Scope.ALL
    assert policy.scope_of(actor("property_manager", "accountant"), "transactions.view") is Scope.ALL
    assert policy.scope_of(actor("property_manager"), "transactions.view") is Scope.STAFF
    assert policy.scope_of(actor("tenant", "no_such_role"), "users.view") is Scope.NONE
    assert policy.permissions_for("tenant", ["support"]) == policy.permissions_for("tenant", ()) | {"users.view"}


def test_require_raises_forbidden_and_require_for_item_not_found() -> None:
    tenant = actor("tenant")
    for check, code, status in ((policy.require, "forbidden", 403), (policy.require_for_item, "not_found", 404)):
        try:
            check(tenant, "users.view")
        except ProtocolError as error:
            assert (error.code, error.http_status) == (code, status)
        else:
            raise AssertionError("a tenant holds no users.view")
    assert policy.require(actor("admin"), "users.view") is Scope.ALL


def test_visible_q_per_scope() -> None:
    own = Q(tenant__user_id="u1")
    assert policy.visible_q(actor("admin"), "leases.view", property_path="unit__property__", own=own) is None
    assert policy.visible_q(actor("tenant"), "leases.view", property_path="unit__property__", own=own) == own
    assert policy.visible_q(actor("tenant"), "leases.view", own=None) == policy.NOTHING
    staff = policy.visible_q(actor("landlord"), "leases.view", property_path="unit__property__", own=own)
    assert staff == policy.NOTHING | policy.property_staff_q(actor("landlord"), "unit__property__")
    # A staff scope reaches the holder's own rows only where they hold the `_own` string too.
    requests = policy.visible_q(actor("landlord"), "maintenance.view", property_path="unit__property__", own=own)
    assert requests == own | policy.property_staff_q(actor("landlord"), "unit__property__")
    owned = policy.visible_q(actor("landlord"), "properties.manage", property_path="", own=Q(pk=1))
    assert owned == policy.NOTHING | Q(owner_id="u1")
    assert policy.visible_q(actor("property_manager"), "properties.manage") == policy.NOTHING


def test_derived_type_sets_follow_the_table() -> None:
    assert policy.SUBSCRIBER_TYPES == {"landlord", "property_manager"}
    assert policy.OWNER_TYPES == {"landlord", "admin"}
    assert policy.MANAGER_TYPES == {"landlord", "property_manager"}


def test_every_family_permission_is_granted_to_someone() -> None:
    """A permission no type or role holds would be a dead endpoint family."""
    granted = set().union(*policy.GRANTS_BY_USER_TYPE.values(), *policy.GRANTS_BY_ROLE.values())
    for actions in policy.FAMILIES.values():
        for permission in actions.values():
            assert permission in granted or permission + policy.OWN_SUFFIX in granted, permission
    for permission in policy.TOPIC_PERMISSIONS.values():
        assert permission in granted, permission
