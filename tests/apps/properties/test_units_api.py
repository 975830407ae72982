"""Units over HTTP: who sees and changes what, filters, pages, money as strings, 409s."""

from decimal import Decimal

import pytest
from django.test import Client

from apps.properties.models import Unit
from apps.properties.services import CANNOT_CHANGE_UNIT, UNIT_HAS_HISTORY, UNIT_NUMBER_TAKEN
from tests.apps.api_world import World
from tests.factories import make_lease, make_property, make_unit

pytestmark = pytest.mark.django_db

NEW_UNIT = {"unitNumber": "2B", "bedrooms": 2, "bathrooms": "1.5", "squareFootage": 900, "monthlyRent": "1725.50"}

SEES = ["admin", "landlord", "manager", "tenant"]
BLIND = ["other_landlord", "other_manager", "other_tenant"]


@pytest.mark.parametrize("who", SEES + BLIND)
def test_get_unit_visibility(world: World, client: Client, who: str) -> None:
    response = world.api(client, who).get(f"/units/{world.unit.pk}")
    assert response.status_code == (200 if who in SEES else 404), response.content
    if who in SEES:
        body = response.json()
        assert body["propertyId"] == str(world.prop.pk)
        assert body["monthlyRent"] == "1450.00" and body["bathrooms"] == "1.5"


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("admin", 201),
        ("landlord", 201),
        ("manager", 201),
        ("tenant", 403),
        ("other_landlord", 404),
        ("other_manager", 404),
        ("other_tenant", 404),
    ],
)
def test_create_unit_owner_manager_or_admin(world: World, client: Client, who: str, status: int) -> None:
    response = world.api(client, who).post(f"/properties/{world.prop.pk}/units", NEW_UNIT)
    assert response.status_code == status, response.content
    created = Unit.objects.filter(property=world.prop, unit_number="2B")
    assert created.exists() is (status == 201)
    if status == 201:
        body = response.json()
        assert body["monthlyRent"] == "1725.50" and body["bathrooms"] == "1.5"
        assert body["isAvailable"] is True and body["isOccupied"] is False
        assert created.get().monthly_rent == Decimal("1725.50")
    if status == 403:
        assert response.json()["error"]["message"] == CANNOT_CHANGE_UNIT


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("admin", 200),
        ("landlord", 200),
        ("manager", 200),
        ("tenant", 403),
        ("other_landlord", 404),
        ("other_manager", 404),
        ("other_tenant", 404),
    ],
)
def test_patch_unit_owner_manager_or_admin(world: World, client: Client, who: str, status: int) -> None:
    response = world.api(client, who).patch(f"/units/{world.unit.pk}", {"monthlyRent": "1500", "isAvailable": False})
    assert response.status_code == status, response.content
    world.unit.refresh_from_db()
    if status == 200:
        assert response.json()["monthlyRent"] == "1500.00"
        assert world.unit.monthly_rent == Decimal("1500") and world.unit.is_available is False
    else:
        assert world.unit.monthly_rent == Decimal("1450.00")


def test_unit_number_taken_in_the_property_is_409_but_free_elsewhere(world: World, client: Client) -> None:
    admin = world.api(client, "admin")
    taken = admin.post(f"/properties/{world.prop.pk}/units", {**NEW_UNIT, "unitNumber": world.unit.unit_number})
    assert taken.status_code == 409
    assert taken.json()["error"] == {"code": "conflict", "message": UNIT_NUMBER_TAKEN, "field": "unitNumber"}
    elsewhere = admin.post(
        f"/properties/{world.other_prop.pk}/units", {**NEW_UNIT, "unitNumber": world.unit.unit_number}
    )
    assert elsewhere.status_code == 201
    second = make_unit(property=world.prop, unit_number="9Z")
    rename = admin.patch(f"/units/{second.pk}", {"unitNumber": world.unit.unit_number})
    assert rename.status_code == 409
    assert admin.patch(f"/units/{second.pk}", {"unitNumber": "9Z"}).status_code == 200  # its own number is fine


@pytest.mark.parametrize(
    "body",
    [
        {**NEW_UNIT, "monthlyRent": "12.345"},
        {**NEW_UNIT, "monthlyRent": "-1"},
        {**NEW_UNIT, "monthlyRent": "100000000.00"},
        {**NEW_UNIT, "monthlyRent": "NaN"},
        {**NEW_UNIT, "bathrooms": "1.25"},
        {**NEW_UNIT, "bedrooms": -1},
        {**NEW_UNIT, "unitNumber": ""},
        {k: v for k, v in NEW_UNIT.items() if k != "monthlyRent"},
        {**NEW_UNIT, "unitFeatures": "not an object"},
    ],
)
def test_invalid_unit_bodies_answer_422(world: World, client: Client, body: dict[str, object]) -> None:
    response = world.api(client, "landlord").post(f"/properties/{world.prop.pk}/units", body)
    assert response.status_code == 422, response.content
    assert response.json()["error"]["fields"]


def test_delete_unit_without_history_and_refuse_with_history(world: World, client: Client) -> None:
    manager = world.api(client, "manager")
    assert world.api(client, "tenant").delete(f"/units/{world.unit.pk}").status_code == 403
    with_lease = manager.delete(f"/units/{world.unit.pk}")
    assert with_lease.status_code == 409 and with_lease.json()["error"]["message"] == UNIT_HAS_HISTORY
    empty = make_unit(property=world.prop)
    assert world.api(client, "other_manager").delete(f"/units/{empty.pk}").status_code == 404
    assert manager.delete(f"/units/{empty.pk}").status_code == 204
    assert not Unit.objects.filter(pk=empty.pk).exists()
    assert manager.get(f"/units/{empty.pk}").status_code == 404


def unit_ids(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {item["id"] for item in response.json()["items"]}


def test_tenant_sees_only_units_of_active_leases(world: World, client: Client) -> None:
    neighbour = make_unit(property=world.prop)
    old = make_unit(property=world.prop)
    make_lease(unit=old, tenants=(world.tenant,), status="terminated")
    tenant = world.api(client, "tenant")
    assert unit_ids(tenant.get(f"/properties/{world.prop.pk}/units")) == {str(world.unit.pk)}
    assert unit_ids(tenant.get("/units")) == {str(world.unit.pk)}
    assert tenant.get(f"/units/{neighbour.pk}").status_code == 404
    assert tenant.get(f"/units/{old.pk}").status_code == 404
    assert unit_ids(world.api(client, "manager").get(f"/properties/{world.prop.pk}/units")) == {
        str(world.unit.pk),
        str(neighbour.pk),
        str(old.pk),
    }


def test_units_of_an_invisible_property_answer_404(world: World, client: Client) -> None:
    assert world.api(client, "other_manager").get(f"/properties/{world.prop.pk}/units").status_code == 404


def test_unit_filters_and_pages(world: World, client: Client) -> None:
    prop = make_property(owner=world.landlord)
    cheap = make_unit(property=prop, unit_number="A", monthly_rent=Decimal("900.00"), bedrooms=1)
    mid = make_unit(property=prop, unit_number="B", monthly_rent=Decimal("1200.00"), bedrooms=2, is_available=False)
    dear = make_unit(property=prop, unit_number="C", monthly_rent=Decimal("2000.00"), bedrooms=3)
    landlord = world.api(client, "landlord")
    path = f"/properties/{prop.pk}/units"
    assert unit_ids(landlord.get(path)) == {str(cheap.pk), str(mid.pk), str(dear.pk)}
    assert unit_ids(landlord.get(path, isAvailable="true")) == {str(cheap.pk), str(dear.pk)}
    assert unit_ids(landlord.get(path, isAvailable="false")) == {str(mid.pk)}
    assert unit_ids(landlord.get(path, minRent="1000")) == {str(mid.pk), str(dear.pk)}
    assert unit_ids(landlord.get(path, maxRent="1200.00")) == {str(cheap.pk), str(mid.pk)}
    assert unit_ids(landlord.get(path, minRent="1000", maxRent="1500")) == {str(mid.pk)}
    assert unit_ids(landlord.get(path, bedrooms=3)) == {str(dear.pk)}
    assert landlord.get(path, minRent="cheap").status_code == 422
    # /units: the same filters across properties, plus propertyId.
    assert unit_ids(landlord.get("/units", propertyId=str(prop.pk), bedrooms=1)) == {str(cheap.pk)}
    assert unit_ids(landlord.get("/units", maxRent="1000")) == {str(cheap.pk)}
    assert str(world.unit.pk) in unit_ids(landlord.get("/units"))
    assert unit_ids(landlord.get("/units", propertyId=str(world.other_prop.pk))) == set()
    page = landlord.get(path, limit=2).json()
    assert [u["unitNumber"] for u in page["items"]] == ["A", "B"] and page["nextOffset"] == 2 and page["count"] == 3
    assert [u["unitNumber"] for u in landlord.get(path, limit=2, offset=2).json()["items"]] == ["C"]
