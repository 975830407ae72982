"""Properties over HTTP: who sees and changes what, filters, pages, validation and deactivation."""

import pytest
from django.test import Client

from apps.properties.models import Property
from apps.properties.services import CANNOT_CHANGE_OWNER, CANNOT_CHANGE_PROPERTY, CANNOT_CREATE_PROPERTY
from tests.apps.api_world import World
from tests.factories import make_lease, make_property, make_unit, make_user

pytestmark = pytest.mark.django_db

NEW_PROPERTY = {
    "propertyName": "Maple Court",
    "streetAddress": "12 Maple Ave",
    "city": "Peoria",
    "state": "IL",
    "zipCode": "61602",
    "propertyType": "multi_family",
}

SEES_PROP = ["admin", "landlord", "manager", "tenant"]
BLIND_TO_PROP = ["other_landlord", "other_manager", "other_tenant"]


@pytest.mark.parametrize("who", SEES_PROP + BLIND_TO_PROP)
def test_get_property_answers_404_to_everyone_outside_its_circle(world: World, client: Client, who: str) -> None:
    response = world.api(client, who).get(f"/properties/{world.prop.pk}")
    if who in SEES_PROP:
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["id"] == str(world.prop.pk) and body["ownerId"] == str(world.landlord.pk)
        assert body["propertyName"] == world.prop.property_name and body["isActive"] is True
    else:
        assert response.status_code == 404
        assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}


def test_unknown_and_malformed_ids(world: World, client: Client) -> None:
    admin = world.api(client, "admin")
    assert admin.get("/properties/00000000-0000-0000-0000-000000000000").status_code == 404
    assert admin.get("/properties/not-a-uuid").status_code == 422


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("admin", 200),
        ("landlord", 200),
        ("manager", 403),
        ("tenant", 403),
        ("other_landlord", 404),
        ("other_manager", 404),
        ("other_tenant", 404),
    ],
)
def test_patch_property_owner_or_admin_only(world: World, client: Client, who: str, status: int) -> None:
    response = world.api(client, who).patch(f"/properties/{world.prop.pk}", {"propertyName": "Renamed"})
    assert response.status_code == status, response.content
    world.prop.refresh_from_db()
    if status == 200:
        assert response.json()["propertyName"] == "Renamed" == world.prop.property_name
    else:
        assert world.prop.property_name != "Renamed"
    if status == 403:
        assert response.json()["error"] == {"code": "forbidden", "message": CANNOT_CHANGE_PROPERTY}


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("admin", 204),
        ("landlord", 204),
        ("manager", 403),
        ("tenant", 403),
        ("other_landlord", 404),
        ("other_manager", 404),
        ("other_tenant", 404),
    ],
)
def test_delete_property_deactivates_and_keeps_history(world: World, client: Client, who: str, status: int) -> None:
    response = world.api(client, who).delete(f"/properties/{world.prop.pk}")
    assert response.status_code == status, response.content
    world.prop.refresh_from_db()
    assert world.prop.is_active is (status != 204)
    assert world.unit.leases.exists()  # nothing cascaded
    if status == 204:
        body = world.api(client, "landlord").get(f"/properties/{world.prop.pk}").json()
        assert body["isActive"] is False


@pytest.mark.parametrize("who", ["manager", "tenant"])
def test_only_landlords_and_admins_create_properties(world: World, client: Client, who: str) -> None:
    response = world.api(client, who).post("/properties", NEW_PROPERTY)
    assert response.status_code == 403
    assert response.json()["error"]["message"] == CANNOT_CREATE_PROPERTY
    assert not Property.objects.filter(property_name="Maple Court").exists()


def test_landlord_creates_own_property_and_cannot_name_another_owner(world: World, client: Client) -> None:
    landlord = world.api(client, "landlord")
    response = landlord.post("/properties", NEW_PROPERTY)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["ownerId"] == str(world.landlord.pk) and body["isActive"] is True and body["hasHudApproval"] is False
    assert body["amenityIds"] == [] and body["yearBuilt"] is None
    assert Property.objects.get(pk=body["id"]).owner_id == world.landlord.pk
    refused = landlord.post("/properties", {**NEW_PROPERTY, "ownerId": str(world.other_landlord.pk)})
    assert refused.status_code == 403 and refused.json()["error"]["message"] == CANNOT_CHANGE_OWNER


def test_admin_creates_for_a_landlord_and_moves_ownership(world: World, client: Client) -> None:
    admin = world.api(client, "admin")
    response = admin.post("/properties", {**NEW_PROPERTY, "ownerId": str(world.other_landlord.pk), "yearBuilt": 1999})
    assert response.status_code == 201, response.content
    prop_id = response.json()["id"]
    assert response.json()["ownerId"] == str(world.other_landlord.pk)
    assert world.api(client, "other_landlord").get(f"/properties/{prop_id}").status_code == 200
    # A tenant cannot own property.
    bad_owner = admin.patch(f"/properties/{prop_id}", {"ownerId": str(world.tenant.pk)})
    assert bad_owner.status_code == 422
    assert bad_owner.json()["error"]["fields"][0]["field"].endswith("ownerId")
    moved = admin.patch(f"/properties/{prop_id}", {"ownerId": str(world.landlord.pk)})
    assert moved.status_code == 200 and moved.json()["ownerId"] == str(world.landlord.pk)
    assert world.api(client, "other_landlord").get(f"/properties/{prop_id}").status_code == 404
    # The owner may edit but not give the property away.
    give_away = world.api(client, "landlord").patch(f"/properties/{prop_id}", {"ownerId": str(world.other_landlord.pk)})
    assert give_away.status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {},
        {**NEW_PROPERTY, "propertyType": "castle"},
        {**NEW_PROPERTY, "propertyName": ""},
        {**NEW_PROPERTY, "propertyName": "   "},
        {**NEW_PROPERTY, "zipCode": "1" * 21},
        {**NEW_PROPERTY, "yearBuilt": 99},
        {**NEW_PROPERTY, "squareFootage": -1},
        {**NEW_PROPERTY, "unknownField": 1},
        {**NEW_PROPERTY, "ownerId": "not-a-uuid"},
    ],
)
def test_invalid_property_bodies_answer_422_with_fields(world: World, client: Client, body: dict[str, object]) -> None:
    response = world.api(client, "landlord").post("/properties", body)
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "bad_request" and error["fields"]
    assert all(field["field"] and field["reason"] for field in error["fields"])


@pytest.mark.parametrize("body", [{"propertyName": None}, {"isActive": None}, {"propertyType": "castle"}, {"nope": 1}])
def test_invalid_patches_answer_422_and_change_nothing(world: World, client: Client, body: dict[str, object]) -> None:
    before = world.prop.updated_at
    response = world.api(client, "landlord").patch(f"/properties/{world.prop.pk}", body)
    assert response.status_code == 422, response.content
    world.prop.refresh_from_db()
    assert world.prop.updated_at == before


def test_patch_may_clear_nullable_fields(world: World, client: Client) -> None:
    landlord = world.api(client, "landlord")
    assert landlord.patch(f"/properties/{world.prop.pk}", {"yearBuilt": 1950}).json()["yearBuilt"] == 1950
    assert landlord.patch(f"/properties/{world.prop.pk}", {"yearBuilt": None}).json()["yearBuilt"] is None


def ids(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {item["id"] for item in response.json()["items"]}


def test_lists_show_each_caller_their_own_properties(world: World, client: Client) -> None:
    managed_elsewhere = make_property(owner=world.other_landlord, managers=(world.landlord,))
    expired = make_property(owner=world.other_landlord)
    make_lease(unit=make_unit(property=expired), tenants=(world.tenant,), status="expired")
    prop, other = str(world.prop.pk), str(world.other_prop.pk)
    assert ids(world.api(client, "landlord").get("/properties")) == {prop, str(managed_elsewhere.pk)}
    assert ids(world.api(client, "manager").get("/properties")) == {prop}
    assert ids(world.api(client, "tenant").get("/properties")) == {prop}  # not the expired lease's
    assert ids(world.api(client, "other_landlord").get("/properties")) == {
        other,
        str(managed_elsewhere.pk),
        str(expired.pk),
    }
    assert {prop, other, str(expired.pk)} <= ids(world.api(client, "admin").get("/properties", limit=100))


def test_property_filters(world: World, client: Client) -> None:
    owner = world.landlord
    chicago = make_property(owner=owner, city="Chicago", state="IL", property_type="condo")
    austin = make_property(owner=owner, city="Austin", state="TX", has_hud_approval=True)
    closed = make_property(owner=owner, city="Austin", state="TX", is_active=False)
    landlord = world.api(client, "landlord")
    assert ids(landlord.get("/properties", city="chicago")) == {str(chicago.pk)}
    assert ids(landlord.get("/properties", state="tx")) == {str(austin.pk), str(closed.pk)}
    assert ids(landlord.get("/properties", state="TX", isActive="true")) == {str(austin.pk)}
    assert ids(landlord.get("/properties", isActive="false")) == {str(closed.pk)}
    assert ids(landlord.get("/properties", hasHudApproval="true")) == {str(austin.pk)}
    assert ids(landlord.get("/properties", propertyType="condo")) == {str(chicago.pk)}
    assert landlord.get("/properties", propertyType="castle").status_code == 422
    assert landlord.get("/properties", hasHudApproval="maybe").status_code == 422


def test_property_pages(world: World, client: Client) -> None:
    landlord = make_user(user_type="landlord")
    for index in range(5):
        make_property(owner=landlord, property_name=f"P{index}")
    from tests.apps.api_world import Api

    api = Api(client, landlord)
    first = api.get("/properties", limit=2).json()
    assert [p["propertyName"] for p in first["items"]] == ["P0", "P1"]
    assert (first["count"], first["limit"], first["offset"], first["nextOffset"]) == (5, 2, 0, 2)
    last = api.get("/properties", limit=2, offset=4).json()
    assert [p["propertyName"] for p in last["items"]] == ["P4"] and last["nextOffset"] is None
    assert api.get("/properties", limit=101).status_code == 422
    assert api.get("/properties", limit=0).status_code == 422
    assert api.get("/properties", offset=-1).status_code == 422


def test_search_finds_what_the_caller_may_see(world: World, client: Client) -> None:
    mine = make_property(owner=world.landlord, property_name="Oak Park Lofts", city="Evanston")
    make_property(owner=world.other_landlord, property_name="Oak Park Towers", city="Evanston")
    make_property(owner=world.landlord, property_name="Oak Park Closed", is_active=False)
    landlord = world.api(client, "landlord")
    body = landlord.get("/properties/search", q="  oak   PARK ").json()
    assert [hit["propertyName"] for hit in body["items"]] == ["Oak Park Lofts"]
    assert body["items"][0]["id"] == str(mine.pk) and body["count"] == 1
    assert landlord.get("/properties/search", q="oak", city="nowhere").json()["items"] == []
    admin_hits = world.api(client, "admin").get("/properties/search", q="oak park", state="il").json()
    assert [hit["propertyName"] for hit in admin_hits["items"]] == ["Oak Park Lofts", "Oak Park Towers"]
    assert world.api(client, "tenant").get("/properties/search", q="oak").json()["items"] == []
    assert landlord.get("/properties/search", q="x" * 201).status_code == 422


def test_summary_and_availability_follow_visibility(world: World, client: Client) -> None:
    for who in SEES_PROP:
        assert world.api(client, who).get(f"/properties/{world.prop.pk}/summary").status_code == 200
        assert world.api(client, who).get(f"/properties/{world.prop.pk}/availability").status_code == 200
    for who in BLIND_TO_PROP:
        assert world.api(client, who).get(f"/properties/{world.prop.pk}/summary").status_code == 404
        assert world.api(client, who).get(f"/properties/{world.prop.pk}/availability").status_code == 404


def test_requests_without_a_token_are_refused(client: Client, db: None) -> None:
    assert client.get("/api/v1/properties").status_code == 401
    assert client.get("/api/v1/lookup/cities/IL").status_code == 401
