"""A unit's `is_occupied` / `is_available` follow whether it has an active lease, on every path that
changes a lease (HTTP create, update, terminate; the admin's save and delete; the daily jobs), with
`unit:availability:{propertyId}` and the unit's `unit.updated` event following; accepting an
invitation changes no lease status and leaves the unit alone."""

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from apps.common import integration
from apps.leasing import invitations, jobs, services
from apps.leasing.models import Lease, LeaseStatus
from apps.properties.models import Unit
from realtime import connections, topics
from tests.apps.api_world import World, build_world
from tests.apps.leasing.test_lease_lifecycle import on
from tests.apps.test_change_events import position, since
from tests.factories import make_unit, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world() -> World:
    return build_world()


@pytest.fixture
def spare(world: World) -> Unit:
    """A free unit of the world's property, beside `world.unit` (leased, but made by the ORM)."""
    return make_unit(property=world.prop)


def occupancy(unit: Unit) -> tuple[bool, bool]:
    unit.refresh_from_db()
    return unit.is_occupied, unit.is_available


def available_units(world: World, client: Client) -> int:
    """`availableUnits` as the API reads it (through the `unit:availability` cache)."""
    response = world.api(client, "manager").get(f"/properties/{world.prop.pk}/availability")
    assert response.status_code == 200, response.content
    count: int = response.json()["availableUnits"]
    return count


def unit_events(unit: Unit, start: str) -> list[tuple[bool, bool]]:
    """The `unit.updated` events of `unit` since `start`, as (isOccupied, isAvailable)."""
    frames = since(topics.unit_changes(str(unit.pk)), start)
    assert {frame["event"] for frame in frames} <= {"unit.updated"}
    return [(frame["data"]["isOccupied"], frame["data"]["isAvailable"]) for frame in frames]


def lease_body(unit: Unit, **overrides: Any) -> dict[str, Any]:
    return {
        "unitId": str(unit.pk),
        "startDate": "2027-01-01",
        "endDate": "2027-12-31",
        "monthlyRent": "1500.00",
        "securityDeposit": "1500.00",
        **overrides,
    }


def test_http_create_terminate_and_activate_move_the_unit_and_its_cached_availability(
    world: World, client: Client, spare: Unit
) -> None:
    manager = world.api(client, "manager")
    start = position(topics.unit_changes(str(spare.pk)))
    assert available_units(world, client) == 2  # now cached

    created = manager.post("/leases", lease_body(spare, leaseStatus="active"))
    assert created.status_code == 201, created.content
    assert occupancy(spare) == (True, False)
    assert available_units(world, client) == 1  # the cached count was dropped with the change
    assert manager.get(f"/units/{spare.pk}").json()["isOccupied"] is True

    assert manager.delete(f"/leases/{created.json()['id']}").status_code == 204
    assert occupancy(spare) == (False, True)
    assert available_units(world, client) == 2

    draft = manager.post("/leases", lease_body(spare))
    assert draft.status_code == 201 and occupancy(spare) == (False, True)  # a draft occupies nothing
    patched = manager.patch(f"/leases/{draft.json()['id']}", {"leaseStatus": "active"})
    assert patched.status_code == 200, patched.content
    assert occupancy(spare) == (True, False)
    assert manager.patch(f"/leases/{draft.json()['id']}", {"specialTerms": "Quiet hours."}).status_code == 200
    assert available_units(world, client) == 1

    # One event per real change: occupied, free, occupied again (the draft and the terms changed nothing).
    assert unit_events(spare, start) == [(True, False), (False, True), (True, False)]


def test_a_refused_activation_changes_nothing(world: World, client: Client, spare: Unit) -> None:
    manager = world.api(client, "manager")
    assert manager.post("/leases", lease_body(spare, leaseStatus="active")).status_code == 201
    start = position(topics.unit_changes(str(spare.pk)))
    second = manager.post("/leases", lease_body(spare, leaseStatus="active"))
    assert second.status_code == 409
    assert occupancy(spare) == (True, False) and unit_events(spare, start) == []


def test_the_daily_job_frees_the_unit_of_an_expired_lease(world: World, client: Client, spare: Unit) -> None:
    created = world.api(client, "manager").post("/leases", lease_body(spare, leaseStatus="active"))
    assert created.status_code == 201
    assert available_units(world, client) == 1
    start = position(topics.unit_changes(str(spare.pk)))

    assert on(date(2027, 12, 31), jobs.end_leases) == 2  # the world's two 2026 leases
    assert occupancy(spare) == (True, False)
    assert on(date(2028, 1, 1), jobs.end_leases) == 1
    assert occupancy(spare) == (False, True)
    assert available_units(world, client) == 2
    assert unit_events(spare, start) == [(False, True)]


def test_a_renewal_keeps_the_unit_occupied_without_an_event(world: World, spare: Unit) -> None:
    lease = services.lease_create(
        unit=spare,
        start_date=date(2027, 1, 1),
        end_date=date(2027, 12, 31),
        monthly_rent=Decimal("1500.00"),
        security_deposit=Decimal("0.00"),
        lease_status=LeaseStatus.ACTIVE,
        auto_renewal=True,
    )
    start = position(topics.unit_changes(str(spare.pk)))
    assert on(date(2028, 1, 1), jobs.end_leases) == 3  # with the world's two 2026 leases
    lease.refresh_from_db()
    assert lease.lease_status == LeaseStatus.RENEWED
    assert occupancy(spare) == (True, False) and unit_events(spare, start) == []


def test_admin_save_and_delete_move_the_unit_and_a_lease_moved_to_another_unit_frees_the_first(
    world: World, spare: Unit
) -> None:
    lease = services.lease_admin_save(
        lease=Lease(
            unit=spare,
            start_date=date(2027, 1, 1),
            end_date=date(2027, 12, 31),
            monthly_rent=Decimal("1500.00"),
            security_deposit=Decimal("0.00"),
            lease_status=LeaseStatus.ACTIVE,
        )
    )
    assert occupancy(spare) == (True, False)

    other = make_unit(property=world.prop)
    lease.unit = other
    services.lease_admin_save(lease=lease)
    assert occupancy(spare) == (False, True) and occupancy(other) == (True, False)

    lease.lease_status = LeaseStatus.TERMINATED
    services.lease_admin_save(lease=lease)
    assert occupancy(other) == (False, True)

    lease.lease_status = LeaseStatus.ACTIVE  # the admin's form is not held to the transitions
    services.lease_admin_save(lease=lease)
    assert occupancy(other) == (True, False)
    services.lease_admin_delete(lease=lease)
    assert occupancy(other) == (False, True)


def test_an_integration_layer_save_of_a_lease_moves_the_unit(world: World, client: Client, spare: Unit) -> None:
    created = world.api(client, "manager").post("/leases", lease_body(spare, leaseStatus="active"))
    assert occupancy(spare) == (True, False)

    async def terminate() -> dict[str, Any]:
        try:
            changes = {"id": created.json()["id"], "lease_status": "terminated"}
            return await integration.save_entity_with_documents("lease", changes, [])
        finally:
            await connections.aclose_loop_clients()

    assert async_to_sync(terminate)()["created"] is False
    assert occupancy(spare) == (False, True)


def test_a_free_unit_marked_unavailable_by_staff_stays_so_until_a_lease_occupies_it(
    world: World, client: Client, spare: Unit
) -> None:
    manager = world.api(client, "manager")
    assert manager.patch(f"/units/{spare.pk}", {"isAvailable": False}).status_code == 200
    draft = manager.post("/leases", lease_body(spare))
    assert draft.status_code == 201 and occupancy(spare) == (False, False)  # renovation: not for rent
    assert manager.patch(f"/leases/{draft.json()['id']}", {"leaseStatus": "active"}).status_code == 200
    assert occupancy(spare) == (True, False)
    assert manager.delete(f"/leases/{draft.json()['id']}").status_code == 204
    assert occupancy(spare) == (False, True)  # a unit whose lease ended is for rent again


def test_accepting_an_invitation_leaves_the_unit_alone(world: World, client: Client, spare: Unit) -> None:
    created = world.api(client, "manager").post("/leases", lease_body(spare, leaseStatus="active"))
    lease = Lease.objects.get(pk=created.json()["id"])
    newcomer = make_user()
    invitation = invitations.invitation_create(
        lease=lease,
        user_id=str(newcomer.pk),
        invited_by_id=str(world.manager.pk),
        tenant_profile={"dateOfBirth": "1988-08-08", "ssnLastFour": "4321"},
    )
    spare.refresh_from_db()
    before = spare.updated_at
    start = position(topics.unit_changes(str(spare.pk)))

    invitations.invitation_accept(invitation_id=str(invitation.pk), user_id=str(newcomer.pk))

    lease.refresh_from_db()
    assert lease.lease_status == LeaseStatus.ACTIVE
    assert occupancy(spare) == (True, False) and spare.updated_at == before
    assert unit_events(spare, start) == []
