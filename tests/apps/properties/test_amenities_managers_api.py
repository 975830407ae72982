"""Amenities (the catalogue and property/unit links) and property managers over HTTP."""

import pytest
from django.test import Client

from apps.properties.models import Amenity, PropertyAmenity, PropertyManager, UnitAmenity
from apps.properties.services import ADMIN_ONLY, ALREADY_MANAGER, AMENITY_EXISTS
from tests.apps.api_world import World
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def amenities(db: None) -> list[Amenity]:
    return [
        Amenity.objects.create(name="Pool", category="outdoor"),
        Amenity.objects.create(name="Gym", category="indoor"),
        Amenity.objects.create(name="Parking", category="outdoor"),
    ]


@pytest.mark.parametrize("who", ["landlord", "manager", "tenant", "other_tenant"])
def test_only_admins_change_the_amenity_catalogue(world: World, client: Client, who: str, amenities) -> None:
    api = world.api(client, who)
    for response in (
        api.post("/amenities", {"name": "Sauna", "category": "indoor"}),
        api.patch(f"/amenities/{amenities[0].pk}", {"name": "Lido"}),
        api.delete(f"/amenities/{amenities[0].pk}"),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["message"] == ADMIN_ONLY
    assert api.get("/amenities").status_code == 200


def test_admin_manages_the_catalogue(world: World, client: Client, amenities) -> None:
    admin = world.api(client, "admin")
    created = admin.post("/amenities", {"name": "Sauna", "category": "indoor"})
    assert created.status_code == 201
    sauna = created.json()
    assert sauna["name"] == "Sauna" and sauna["category"] == "indoor"
    duplicate = admin.post("/amenities", {"name": "sauna", "category": "INDOOR"})
    assert duplicate.status_code == 409 and duplicate.json()["error"]["message"] == AMENITY_EXISTS
    assert admin.post("/amenities", {"name": "", "category": "indoor"}).status_code == 422
    assert admin.patch(f"/amenities/{sauna['id']}", {"category": "spa"}).json()["category"] == "spa"
    assert admin.get(f"/amenities/{sauna['id']}").json() == {"id": sauna["id"], "name": "Sauna", "category": "spa"}
    assert admin.delete(f"/amenities/{sauna['id']}").status_code == 204
    assert admin.get(f"/amenities/{sauna['id']}").status_code == 404
    assert admin.delete(f"/amenities/{sauna['id']}").status_code == 404
    names = [a["name"] for a in admin.get("/amenities").json()]
    assert names == ["Gym", "Parking", "Pool"]


@pytest.mark.parametrize(
    ("who", "status"),
    [("admin", 200), ("landlord", 200), ("manager", 403), ("tenant", 403), ("other_landlord", 404)],
)
def test_set_property_amenities_owner_or_admin(world: World, client: Client, amenities, who: str, status: int) -> None:
    PropertyAmenity.objects.create(property=world.prop, amenity=amenities[0])
    wanted = [amenities[1].pk, amenities[2].pk]
    response = world.api(client, who).put(f"/properties/{world.prop.pk}/amenities", {"amenityIds": wanted})
    assert response.status_code == status, response.content
    held = set(PropertyAmenity.objects.filter(property=world.prop).values_list("amenity_id", flat=True))
    if status == 200:
        assert held == set(wanted)
        assert [a["name"] for a in response.json()] == ["Gym", "Parking"]
        body = world.api(client, "tenant").get(f"/properties/{world.prop.pk}")
        assert body.json()["amenityIds"] == sorted(wanted)
        assert [
            a["name"] for a in world.api(client, "tenant").get(f"/properties/{world.prop.pk}/amenities").json()
        ] == ["Gym", "Parking"]
    else:
        assert held == {amenities[0].pk}


def test_unknown_amenity_ids_answer_422_and_change_nothing(world: World, client: Client, amenities) -> None:
    response = world.api(client, "landlord").put(
        f"/properties/{world.prop.pk}/amenities", {"amenityIds": [amenities[0].pk, 999_999]}
    )
    assert response.status_code == 422
    assert "999999" in response.json()["error"]["fields"][0]["reason"]
    assert not PropertyAmenity.objects.filter(property=world.prop).exists()


@pytest.mark.parametrize(
    ("who", "status"),
    [("admin", 200), ("landlord", 200), ("manager", 200), ("tenant", 403), ("other_manager", 404)],
)
def test_set_unit_amenities_owner_manager_or_admin(
    world: World, client: Client, amenities, who: str, status: int
) -> None:
    response = world.api(client, who).put(f"/units/{world.unit.pk}/amenities", {"amenityIds": [amenities[1].pk]})
    assert response.status_code == status, response.content
    held = list(UnitAmenity.objects.filter(unit=world.unit).values_list("amenity_id", flat=True))
    assert held == ([amenities[1].pk] if status == 200 else [])
    if status == 200:
        assert world.api(client, "tenant").get(f"/units/{world.unit.pk}").json()["amenityIds"] == [amenities[1].pk]
        assert world.api(client, "tenant").get(f"/units/{world.unit.pk}/amenities").json()[0]["name"] == "Gym"
        cleared = world.api(client, who).put(f"/units/{world.unit.pk}/amenities", {"amenityIds": []})
        assert cleared.status_code == 200 and cleared.json() == []


@pytest.mark.parametrize(
    ("who", "status"),
    [("admin", 200), ("landlord", 200), ("manager", 200), ("tenant", 403), ("other_manager", 404)],
)
def test_list_managers(world: World, client: Client, who: str, status: int) -> None:
    response = world.api(client, who).get(f"/properties/{world.prop.pk}/managers")
    assert response.status_code == status, response.content
    if status == 200:
        assert [m["userId"] for m in response.json()] == [str(world.manager.pk)]
        assert response.json()[0]["email"] == world.manager.email


@pytest.mark.parametrize(
    ("who", "status"),
    [("admin", 201), ("landlord", 201), ("manager", 403), ("tenant", 403), ("other_landlord", 404)],
)
def test_add_manager_owner_or_admin(world: World, client: Client, who: str, status: int) -> None:
    newcomer = make_user(user_type="property_manager")
    response = world.api(client, who).post(f"/properties/{world.prop.pk}/managers", {"userId": str(newcomer.pk)})
    assert response.status_code == status, response.content
    assert PropertyManager.objects.filter(property=world.prop, user=newcomer).exists() is (status == 201)


def test_manager_changes_take_effect_on_visibility(world: World, client: Client) -> None:
    landlord = world.api(client, "landlord")
    other_manager = world.api(client, "other_manager")
    assert other_manager.get(f"/properties/{world.prop.pk}").status_code == 404
    path = f"/properties/{world.prop.pk}/managers"
    assert landlord.post(path, {"userId": str(world.other_manager.pk)}).status_code == 201
    again = landlord.post(path, {"userId": str(world.other_manager.pk)})
    assert again.status_code == 409 and again.json()["error"]["message"] == ALREADY_MANAGER
    assert other_manager.get(f"/properties/{world.prop.pk}").status_code == 200
    assert other_manager.patch(f"/units/{world.unit.pk}", {"isAvailable": False}).status_code == 200
    assert landlord.delete(f"{path}/{world.other_manager.pk}").status_code == 204
    assert landlord.delete(f"{path}/{world.other_manager.pk}").status_code == 404
    assert other_manager.get(f"/properties/{world.prop.pk}").status_code == 404


@pytest.mark.parametrize("kind", ["tenant", "admin", "inactive", "owner", "unknown"])
def test_ineligible_managers_answer_422(world: World, client: Client, kind: str) -> None:
    if kind == "owner":
        user_id = str(world.landlord.pk)
    elif kind == "unknown":
        user_id = "00000000-0000-0000-0000-000000000000"
    elif kind == "inactive":
        user_id = str(make_user(user_type="property_manager", is_active=False).pk)
    else:
        user_id = str(make_user(user_type=kind).pk)
    response = world.api(client, "admin").post(f"/properties/{world.prop.pk}/managers", {"userId": user_id})
    assert response.status_code == 422, response.content
    assert response.json()["error"]["fields"][0]["field"].endswith("userId")
