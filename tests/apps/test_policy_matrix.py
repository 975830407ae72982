"""Role x endpoint family over real HTTP calls, parametrized from the policy's own table.

Every (family, action) of `apps.common.policy.FAMILIES` is tried by every user type and by
the roles `accountant`, `support` and `maintenance_staff` (each on a tenant base). The
expected answer is read from the same grants the server decides with: a caller holding the
family's permission in some scope gets 2xx (every caller is placed so that their scope
covers the world's first property: the landlord owns it, the manager manages it, the
tenant-based users rent a unit in it), a caller holding it in none gets 403 on a
collection or a create, and 403 or 404 on an object (404 where its id must not be probed).
A family added to the table without a call here fails `test_every_family_action_is_exercised`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from apps.common import policy
from apps.common.policy import Actor
from apps.finance.models import Transaction
from apps.hud.models import HudProgram
from apps.leasing.models import Lease
from apps.maintenance.models import MaintenanceRequest, WorkOrder
from apps.subscriptions.models import SubscriptionPlan
from tests.apps.api_world import Api, World, build_world
from tests.factories import make_lease, make_unit, make_user

pytestmark = pytest.mark.django_db

# Who calls: (user type, roles). The roles sit on the weakest base so that what they add shows.
SUBJECTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "tenant": ("tenant", ()),
    "landlord": ("landlord", ()),
    "property_manager": ("property_manager", ()),
    "admin": ("admin", ()),
    "accountant": ("tenant", ("accountant",)),
    "support": ("tenant", ("support",)),
    "maintenance_staff": ("tenant", ("maintenance_staff",)),
}


@dataclass
class Scene:
    """The world, the caller, and the objects the calls act on."""

    world: World
    user: Any
    unit: Any  # a unit of world.prop the caller can reach in their scope (their own, for tenant bases)
    request: MaintenanceRequest
    order: WorkOrder
    plan: SubscriptionPlan
    program: HudProgram


def set_scene(name: str) -> Scene:
    world = build_world()
    user_type, roles = SUBJECTS[name]
    if name == "landlord":
        user, unit = world.landlord, world.unit
    elif name == "property_manager":
        user, unit = world.manager, world.unit
    elif name == "admin":
        user, unit = world.admin, world.unit
    elif name == "tenant":
        user, unit = world.tenant, world.unit
    else:
        user = make_user(user_type=user_type, roles=roles)
        unit = make_unit(property=world.prop)
        make_lease(unit=unit, tenants=(user,))
    request = MaintenanceRequest.objects.create(
        unit=world.unit, tenant=world.tenant_record(world.tenant), category="plumbing", description="leak"
    )
    order = WorkOrder.objects.create(request=request)
    plan = SubscriptionPlan.objects.create(plan_name="Basic", price_per_unit="2.50", minimum_price="20.00")
    program = HudProgram.objects.create(program_name="Housing Choice Voucher", program_code="HCV")
    return Scene(world, user, unit, request, order, plan, program)


OK = {200, 201, 204}
COLLECTION = "collection"  # denied: 403
ITEM = "item"  # denied: 403 or 404 (the object's id must not be probed)

Call = Callable[[Api, Scene], Any]


def _vacant_unit(api: Api, s: Scene) -> Any:
    return api.post(
        "/leases",
        {
            "unitId": str(make_unit(property=s.world.prop).pk),
            "startDate": "2027-01-01",
            "endDate": "2027-12-31",
            "monthlyRent": "1500.00",
            "securityDeposit": "1500.00",
        },
    )


def _transaction(api: Api, s: Scene) -> Any:
    lease = Lease.objects.get(unit=s.world.unit)
    return api.post(
        "/transactions",
        {"leaseId": str(lease.pk), "transactionType": "rent", "amount": "1450.00", "dueDate": "2026-03-01"},
    )


def _subscribe(api: Api, s: Scene) -> Any:
    body: dict[str, Any] = {"planId": str(s.plan.pk), "unitCount": 3}
    if policy.sees_all(subject_of(s), "subscriptions.manage"):
        body["userId"] = str(s.world.other_landlord.pk)  # an admin subscribes someone who may hold one
    return api.post("/subscriptions", body)


def _hud_apply(api: Api, s: Scene) -> Any:
    body: dict[str, Any] = {"programId": str(s.program.pk)}
    if policy.scope_of(subject_of(s), "hud.apply") > policy.Scope.OWN:
        body["tenantId"] = str(s.world.tenant_record(s.world.tenant).pk)
    return api.post("/hud-applications", body)


CALLS: dict[tuple[str, str], tuple[str, Call]] = {
    ("properties", "view"): (COLLECTION, lambda api, s: api.get("/properties")),
    ("properties", "create"): (
        COLLECTION,
        lambda api, s: api.post(
            "/properties",
            {
                "propertyName": "Maple Court",
                "streetAddress": "12 Maple Ave",
                "city": "Peoria",
                "state": "IL",
                "zipCode": "61602",
                "propertyType": "multi_family",
            },
        ),
    ),
    ("properties", "manage"): (
        ITEM,
        lambda api, s: api.patch(f"/properties/{s.world.prop.pk}", {"propertyName": "Renamed"}),
    ),
    ("units", "view"): (COLLECTION, lambda api, s: api.get("/units")),
    ("units", "manage"): (
        ITEM,
        lambda api, s: api.post(
            f"/properties/{s.world.prop.pk}/units",
            {"unitNumber": "9Z", "bedrooms": 2, "bathrooms": "1.5", "squareFootage": 900, "monthlyRent": "1725.50"},
        ),
    ),
    ("leases", "view"): (COLLECTION, lambda api, s: api.get("/leases")),
    ("leases", "manage"): (COLLECTION, _vacant_unit),
    ("tenants", "view"): (COLLECTION, lambda api, s: api.get("/tenants")),
    ("tenants", "manage"): (
        ITEM,
        lambda api, s: api.patch(f"/tenants/{s.world.tenant_record(s.world.tenant).pk}", {"employerName": "Acme"}),
    ),
    ("transactions", "view"): (COLLECTION, lambda api, s: api.get("/transactions")),
    ("transactions", "manage"): (COLLECTION, _transaction),
    ("maintenance", "view"): (COLLECTION, lambda api, s: api.get("/maintenance-requests")),
    ("maintenance", "create"): (
        COLLECTION,
        lambda api, s: api.post(
            "/maintenance-requests", {"unitId": str(s.unit.pk), "category": "plumbing", "description": "Dripping tap"}
        ),
    ),
    ("maintenance", "manage"): (
        ITEM,
        lambda api, s: api.patch(f"/maintenance-requests/{s.request.pk}", {"priority": "high"}),
    ),
    ("workorders", "view"): (COLLECTION, lambda api, s: api.get("/work-orders")),
    ("workorders", "update"): (
        ITEM,
        lambda api, s: api.patch(f"/work-orders/{s.order.pk}", {"completionNotes": "Replaced trap"}),
    ),
    ("vendors", "view"): (COLLECTION, lambda api, s: api.get("/vendors")),
    ("vendors", "manage"): (
        COLLECTION,
        lambda api, s: api.post(
            "/vendors", {"companyName": "Bright Electric", "phone": "555-0101", "serviceCategory": "electrical"}
        ),
    ),
    ("hud", "view"): (COLLECTION, lambda api, s: api.get("/hud-applications")),
    ("hud", "apply"): (COLLECTION, _hud_apply),
    ("hud", "manage"): (
        ITEM,
        lambda api, s: api.put(
            f"/properties/{s.world.prop.pk}/hud-programs", {"programs": [{"programId": str(s.program.pk)}]}
        ),
    ),
    ("hud", "admin"): (
        COLLECTION,
        lambda api, s: api.post("/hud-programs", {"programName": "Project-Based Voucher", "programCode": "PBV"}),
    ),
    ("subscriptions", "view"): (COLLECTION, lambda api, s: api.get("/subscriptions")),
    ("subscriptions", "manage"): (COLLECTION, _subscribe),
    ("users", "view"): (COLLECTION, lambda api, s: api.get("/users")),
    ("users", "manage"): (
        COLLECTION,
        lambda api, s: api.post(
            "/users",
            {
                "email": "new.person@example.test",
                "password": "a long enough password",
                "firstName": "New",
                "lastName": "Person",
                "userType": "tenant",
            },
        ),
    ),
    ("documents", "view"): (COLLECTION, lambda api, s: api.get("/documents")),
    ("broadcasts", "send"): (
        COLLECTION,
        lambda api, s: api.post("/system/broadcasts", {"title": "Water off", "message": "From 9 to 11"}),
    ),
    ("admin", "access"): (COLLECTION, lambda api, s: api.get("/usage-patterns")),
}


def subject_of(scene: Scene) -> Actor:
    return Actor(
        user_id=str(scene.user.pk),
        user_type=scene.user.user_type,
        roles=tuple(scene.user.roles.values_list("role_name", flat=True)),
    )


def expected_allowed(name: str, family: str, action: str) -> bool:
    """What the policy's table says, for a subject of this kind (no database needed)."""
    user_type, roles = SUBJECTS[name]
    return policy.allows(Actor(user_id="-", user_type=user_type, roles=roles), policy.FAMILIES[family][action])


CASES = [
    (name, family, action) for family, actions in policy.FAMILIES.items() for action in actions for name in SUBJECTS
]


def test_every_family_action_is_exercised() -> None:
    table = {(family, action) for family, actions in policy.FAMILIES.items() for action in actions}
    assert table == set(CALLS)


def test_the_roles_get_what_their_strings_say() -> None:
    """The regression the table fixes: these roles held strings and got 403 everywhere."""
    assert expected_allowed("accountant", "transactions", "view")
    assert expected_allowed("accountant", "transactions", "manage")
    assert expected_allowed("support", "users", "view")
    assert not expected_allowed("support", "users", "manage")
    assert expected_allowed("maintenance_staff", "workorders", "update")
    assert not expected_allowed("tenant", "vendors", "view")


@pytest.mark.parametrize(("name", "family", "action"), CASES, ids=[f"{n}-{f}.{a}" for n, f, a in CASES])
def test_role_against_endpoint_family(client: Client, name: str, family: str, action: str) -> None:
    scene = set_scene(name)
    kind, call = CALLS[(family, action)]
    response = call(Api(client, scene.user), scene)
    if expected_allowed(name, family, action):
        assert response.status_code in OK, (name, family, action, response.status_code, response.content)
    else:
        denied = {403} if kind == COLLECTION else {403, 404}
        assert response.status_code in denied, (name, family, action, response.status_code, response.content)


def test_accountant_sees_and_changes_transactions_of_every_property(client: Client) -> None:
    """Scope, not just the gate: the accountant role reads and writes transactions it is not party to."""
    world = build_world()
    other_lease = Lease.objects.get(unit=world.other_unit)
    charge = Transaction.objects.create(
        lease=other_lease, property=world.other_prop, transaction_type="rent", amount="900.00"
    )
    accountant = Api(client, make_user(roles=("accountant",)))
    listed = accountant.get("/transactions")
    assert listed.status_code == 200 and str(charge.pk) in [row["id"] for row in listed.json()["items"]]
    changed = accountant.patch(f"/transactions/{charge.pk}", {"paymentStatus": "paid"})
    assert changed.status_code == 200, changed.content
    # ... and nothing else: their base type's leases stay their own.
    assert accountant.get(f"/leases/{other_lease.pk}").status_code == 404


def test_support_reads_users_but_cannot_change_them(client: Client) -> None:
    world = build_world()
    support = Api(client, make_user(roles=("support",)))
    assert support.get(f"/users/{world.landlord.pk}").json()["email"] == world.landlord.email
    assert support.get(f"/users/{world.landlord.pk}/roles").status_code == 200
    assert support.patch(f"/users/{world.landlord.pk}", {"firstName": "X"}).status_code == 404
    assert support.post(f"/users/{world.landlord.pk}/roles", {"roleName": "support"}).status_code == 404
