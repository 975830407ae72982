"""Users and roles over HTTP: admins only, hashed passwords, 409 on taken emails, deactivation keeps history."""

import json
from typing import Any

import pytest
import redis
from django.test import Client

from apps.accounts.models import User, UserRole
from apps.accounts.services import CANNOT_DEMOTE_SELF, EMAIL_TAKEN, ROLE_HELD, ROLE_NOT_HELD
from apps.accounts.users_api import ADMINS_ONLY
from tests.apps.api_world import World, build_world
from tests.factories import make_user

pytestmark = pytest.mark.django_db

NEW_USER: dict[str, Any] = {
    "email": "New.Person@Example.test",
    "password": "a long enough password",
    "firstName": "New",
    "lastName": "Person",
    "userType": "property_manager",
    "roles": ["accountant"],
}
NON_ADMINS = ["landlord", "manager", "tenant"]


@pytest.fixture
def world(db: None) -> World:
    return build_world()


@pytest.mark.parametrize("who", NON_ADMINS)
def test_non_admins_get_403_on_collections_and_404_on_items(world: World, client: Client, who: str) -> None:
    api = world.api(client, who)
    for response in (api.get("/users"), api.post("/users", NEW_USER)):
        assert response.status_code == 403
        assert response.json()["error"] == {"code": "forbidden", "message": ADMINS_ONLY}
    target = f"/users/{world.tenant.pk}"
    for response in (
        api.get(target),
        api.patch(target, {"firstName": "X"}),
        api.delete(target),
        api.get(f"{target}/roles"),
        api.post(f"{target}/roles", {"roleName": "support"}),
        api.delete(f"{target}/roles/support"),
        api.get(f"/users/{world.admin.pk}"),  # an existing admin looks like nobody
    ):
        assert response.status_code == 404, response.content
        assert response.json()["error"]["code"] == "not_found"
    assert not User.objects.filter(email__iexact=NEW_USER["email"]).exists()
    world.tenant.refresh_from_db()
    assert world.tenant.is_active and world.tenant.first_name != "X"


def test_admin_creates_a_user_with_a_hashed_password_and_roles(world: World, client: Client) -> None:
    admin = world.api(client, "admin")
    response = admin.post("/users", NEW_USER)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["email"] == "new.person@example.test"
    assert body["roles"] == ["accountant"] and body["userType"] == "property_manager" and body["isActive"] is True
    assert "password" not in body
    user = User.objects.get(pk=body["id"])
    assert user.password != NEW_USER["password"] and user.check_password(NEW_USER["password"])
    assert admin.get(f"/users/{user.pk}").json() == body
    login = client.post(
        "/api/v1/auth/login",
        data=json.dumps({"email": NEW_USER["email"], "password": NEW_USER["password"]}),
        content_type="application/json",
    )
    assert login.status_code == 200 and login.json()["user"]["roles"] == ["accountant"]


def test_taken_email_is_409_in_any_case(world: World, client: Client) -> None:
    admin = world.api(client, "admin")
    response = admin.post("/users", {**NEW_USER, "email": world.tenant.email.upper()})
    assert response.status_code == 409
    assert response.json()["error"]["message"] == EMAIL_TAKEN
    patch = admin.patch(f"/users/{world.landlord.pk}", {"email": world.tenant.email})
    assert patch.status_code == 409
    assert admin.patch(f"/users/{world.landlord.pk}", {"email": world.landlord.email.upper()}).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {**NEW_USER, "email": "not-an-email"},
        {**NEW_USER, "password": "short"},
        {**NEW_USER, "userType": "superhero"},
        {**NEW_USER, "firstName": ""},
        {**NEW_USER, "roles": ["Bad Role!"]},
        {**NEW_USER, "isActive": False},
    ],
)
def test_invalid_user_bodies_answer_422(world: World, client: Client, body: dict[str, object]) -> None:
    response = world.api(client, "admin").post("/users", body)
    assert response.status_code == 422, response.content
    assert response.json()["error"]["fields"]


def test_admin_updates_a_user_and_password_is_rehashed(world: World, client: Client) -> None:
    admin = world.api(client, "admin")
    response = admin.patch(
        f"/users/{world.manager.pk}", {"firstName": "Mia", "phone": "555-0100", "password": "another long password"}
    )
    assert response.status_code == 200, response.content
    assert response.json()["firstName"] == "Mia" and response.json()["phone"] == "555-0100"
    world.manager.refresh_from_db()
    assert world.manager.check_password("another long password")
    assert admin.patch(f"/users/{world.manager.pk}", {"phone": None}).json()["phone"] is None
    assert admin.patch(f"/users/{world.manager.pk}", {"firstName": None}).status_code == 422
    assert admin.patch("/users/00000000-0000-0000-0000-000000000000", {"firstName": "X"}).status_code == 404


def test_delete_deactivates_keeps_history_and_stops_the_token(
    world: World, client: Client, django_capture_on_commit_callbacks
) -> None:
    tenant_api = world.api(client, "tenant")
    assert tenant_api.get("/units").status_code == 200
    admin = world.api(client, "admin")
    with django_capture_on_commit_callbacks(execute=True):  # the session cache is dropped after commit
        assert admin.delete(f"/users/{world.tenant.pk}").status_code == 204
    world.tenant.refresh_from_db()
    assert world.tenant.is_active is False
    assert world.tenant_record(world.tenant).lease_links.exists()  # history kept
    assert tenant_api.get("/units").status_code == 401
    assert admin.get(f"/users/{world.tenant.pk}").json()["isActive"] is False
    listed = admin.get("/users", isActive="false").json()["items"]
    assert [u["id"] for u in listed] == [str(world.tenant.pk)]
    assert admin.patch(f"/users/{world.tenant.pk}", {"isActive": True}).json()["isActive"] is True


def test_admin_cannot_lock_themselves_out(world: World, client: Client) -> None:
    admin = world.api(client, "admin")
    for response in (
        admin.delete(f"/users/{world.admin.pk}"),
        admin.patch(f"/users/{world.admin.pk}", {"userType": "landlord"}),
        admin.patch(f"/users/{world.admin.pk}", {"isActive": False}),
    ):
        assert response.status_code == 409
        assert response.json()["error"]["message"] == CANNOT_DEMOTE_SELF
    assert admin.patch(f"/users/{world.admin.pk}", {"firstName": "Ada"}).status_code == 200


def test_user_list_filters_and_pages(world: World, client: Client) -> None:
    make_user(user_type="landlord", email="zz-alpha@example.test", first_name="Zed")
    make_user(user_type="landlord", email="zz-beta@example.test", is_active=False)
    admin = world.api(client, "admin")
    landlords = admin.get("/users", userType="landlord", limit=100).json()
    assert landlords["count"] == 4 and {u["userType"] for u in landlords["items"]} == {"landlord"}
    assert [u["email"] for u in admin.get("/users", q="zz-", isActive="true").json()["items"]] == [
        "zz-alpha@example.test"
    ]
    assert [u["email"] for u in admin.get("/users", q="zed").json()["items"]] == ["zz-alpha@example.test"]
    page = admin.get("/users", limit=3).json()
    assert len(page["items"]) == 3 and page["count"] == 9 and page["nextOffset"] == 3
    emails = [u["email"] for u in page["items"]]
    assert emails == sorted(emails)
    assert admin.get("/users", userType="superhero").status_code == 422


def test_roles_add_list_remove(
    world: World, client: Client, clean_redis: redis.Redis, django_capture_on_commit_callbacks
) -> None:
    manager_api = world.api(client, "manager")
    assert "maintenance.work" not in manager_api.get("/auth/me").json()["permissions"]
    assert clean_redis.exists(f"user:permissions:{world.manager.pk}")
    admin = world.api(client, "admin")
    path = f"/users/{world.manager.pk}/roles"
    with django_capture_on_commit_callbacks(execute=True):
        added = admin.post(path, {"roleName": "maintenance_staff"})
    assert added.status_code == 201 and added.json()["roles"] == ["maintenance_staff"]
    assert not clean_redis.exists(f"user:permissions:{world.manager.pk}")  # dropped after commit
    assert "maintenance.work" in manager_api.get("/auth/me").json()["permissions"]
    again = admin.post(path, {"roleName": "maintenance_staff"})
    assert again.status_code == 409 and again.json()["error"]["message"] == ROLE_HELD
    assert admin.post(path, {"roleName": "Not Valid"}).status_code == 422
    assert admin.get(path).json() == {"userId": str(world.manager.pk), "roles": ["maintenance_staff"]}
    with django_capture_on_commit_callbacks(execute=True):
        assert admin.delete(f"{path}/maintenance_staff").status_code == 204
    assert not UserRole.objects.filter(user=world.manager).exists()
    assert "maintenance.work" not in manager_api.get("/auth/me").json()["permissions"]
    missing = admin.delete(f"{path}/maintenance_staff")
    assert missing.status_code == 404 and missing.json()["error"]["message"] == ROLE_NOT_HELD
    assert admin.get("/users/00000000-0000-0000-0000-000000000000/roles").status_code == 404
