"""`properties.has_hud_approval` follows the property's HUD programs on every path (the staff's PUT, the admin's
program page and deletes, the daily expiry of approvals), announced as `property.updated`; the landlords are told
when a HUD application's status changes."""

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.db import transaction
from django.test import Client
from django.urls import reverse

from apps.common.jobs import load_all
from apps.events.notices import Notice
from apps.hud import services
from apps.hud.jobs import hud_approvals_expire
from apps.hud.models import HudApplication, HudProgram, PropertyHudProgram
from apps.properties.models import Property
from realtime import topics
from tests.apps.api_world import World, build_world
from tests.apps.test_change_events import Listener
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world() -> World:
    return build_world()


@pytest.fixture
def changes(world: World) -> Iterator[Listener]:
    """The property's change topic, as a raw Redis subscriber."""
    listener = Listener(topics.property_changes(str(world.prop.pk)))
    yield listener
    listener.close()


def make_program(code: str) -> HudProgram:
    return HudProgram.objects.create(program_name=f"Program {code}", program_code=code)


def put_programs(world: World, client: Client, *links: tuple[HudProgram, str], who: str = "manager") -> Any:
    body = {"programs": [{"programId": str(program.pk), "status": status} for program, status in links]}
    response = world.api(client, who).put(f"/properties/{world.prop.pk}/hud-programs", body)
    assert response.status_code == 200, response.content
    return response.json()


def approval(world: World, client: Client) -> bool:
    """hasHudApproval as GET /properties/{id} answers it, and the cached search (`search:properties:*`) agrees."""
    api = world.api(client, "landlord")
    response = api.get(f"/properties/{world.prop.pk}")
    assert response.status_code == 200, response.content
    (hit,) = api.get("/properties/search", q=world.prop.property_name).json()["items"]
    assert hit["hasHudApproval"] is response.json()["hasHudApproval"], "the search cache is stale"
    return response.json()["hasHudApproval"]


def announced_approvals(listener: Listener, count: int) -> list[bool]:
    frames = listener.take(count)
    assert {frame["event"] for frame in frames} == {"property.updated"}
    return [frame["data"]["hasHudApproval"] for frame in frames]


def test_approving_a_program_sets_the_flag_and_losing_the_last_approval_clears_it(
    world: World, client: Client, changes: Listener
) -> None:
    s8, pbv = make_program("S8"), make_program("PBV")
    put_programs(world, client, (s8, "pending"))
    assert approval(world, client) is False and changes.nothing()

    put_programs(world, client, (s8, "approved"))
    assert announced_approvals(changes, 1) == [True] and approval(world, client) is True

    put_programs(world, client, (s8, "approved"), (pbv, "approved"))  # a second approval: no change to announce
    assert changes.nothing()
    put_programs(world, client, (s8, "revoked"), (pbv, "approved"))  # one approval left
    assert changes.nothing() and approval(world, client) is True

    put_programs(world, client, (s8, "revoked"), (pbv, "expired"))  # the last approval lost by status
    assert announced_approvals(changes, 1) == [False] and approval(world, client) is False

    put_programs(world, client, (pbv, "approved"))
    assert announced_approvals(changes, 1) == [True]
    put_programs(world, client)  # the last approval lost by removal
    assert announced_approvals(changes, 1) == [False] and approval(world, client) is False
    assert changes.nothing()


def test_deleting_an_approved_program_over_http_clears_the_flag(
    world: World, client: Client, changes: Listener
) -> None:
    program = make_program("S8")
    put_programs(world, client, (program, "approved"))
    changes.take(1)
    assert world.api(client, "admin").delete(f"/hud-programs/{program.pk}").status_code == 204
    assert announced_approvals(changes, 1) == [False] and approval(world, client) is False


def test_a_failed_change_leaves_the_flag_alone(world: World, client: Client) -> None:
    program = make_program("S8")
    put_programs(world, client, (program, "approved"))
    bad = {"programs": [{"programId": str(program.pk), "status": "revoked"}, {"programId": str(world.prop.pk)}]}
    assert world.api(client, "manager").put(f"/properties/{world.prop.pk}/hud-programs", bad).status_code == 422
    assert approval(world, client) is True
    assert world.api(client, "tenant").put(f"/properties/{world.prop.pk}/hud-programs", {"programs": []}).status_code
    assert approval(world, client) is True


# --- the admin site --------------------------------------------------------------------------


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(make_user(user_type="admin"))
    return client


def test_admin_removing_the_property_from_the_program_page_clears_the_flag(
    world: World, client: Client, admin_client: Client, changes: Listener
) -> None:
    program = make_program("S8")
    put_programs(world, client, (program, "approved"))
    changes.take(1)
    url = reverse("admin:hud_hudprogram_change", args=[program.pk])
    data = {"program_name": program.program_name, "program_code": program.program_code, "approved_properties": []}
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content[:2000]
    assert not PropertyHudProgram.objects.filter(program=program).exists()
    assert announced_approvals(changes, 1) == [False] and approval(world, client) is False
    # Adding it back makes a pending link: no approval yet.
    data["approved_properties"] = [str(world.prop.pk)]
    assert admin_client.post(url, data).status_code == 302
    assert PropertyHudProgram.objects.get(program=program).status == "pending"
    assert approval(world, client) is False and changes.nothing()


def test_admin_deleting_the_program_clears_the_flag(
    world: World, client: Client, admin_client: Client, changes: Listener
) -> None:
    program = make_program("S8")
    put_programs(world, client, (program, "approved"))
    changes.take(1)
    response = admin_client.post(reverse("admin:hud_hudprogram_delete", args=[program.pk]), {"post": "yes"})
    assert response.status_code == 302, response.content[:2000]
    assert not HudProgram.objects.filter(pk=program.pk).exists()
    assert announced_approvals(changes, 1) == [False]
    assert Property.objects.get(pk=world.prop.pk).has_hud_approval is False


# --- the daily expiry of approvals -------------------------------------------------------------


def test_an_approval_expires_the_day_after_its_expiration_date_once(
    world: World, client: Client, changes: Listener
) -> None:
    assert load_all()["hud.approvals_expire"] is hud_approvals_expire
    program = make_program("S8")
    body = {"programs": [{"programId": str(program.pk), "status": "approved", "expirationDate": "2026-06-30"}]}
    assert world.api(client, "manager").put(f"/properties/{world.prop.pk}/hud-programs", body).status_code == 200
    changes.take(1)
    for day in (datetime.date(2026, 6, 29), datetime.date(2026, 6, 30)):
        with time_machine.travel(datetime.datetime.combine(day, datetime.time(2), datetime.UTC), tick=False):
            assert hud_approvals_expire(day) == 0
    assert changes.nothing() and approval(world, client) is True
    with time_machine.travel(datetime.datetime(2026, 7, 1, 2, tzinfo=datetime.UTC), tick=False):
        assert hud_approvals_expire(datetime.date(2026, 7, 1)) == 1
        assert hud_approvals_expire(datetime.date(2026, 7, 1)) == 0
        assert hud_approvals_expire(datetime.date(2026, 6, 15)) == 0  # the runner catching up a past day
    assert PropertyHudProgram.objects.get(program=program).status == "expired"
    assert announced_approvals(changes, 1) == [False] and approval(world, client) is False


# --- application status notices ---------------------------------------------------------------


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Notice]:
    """The notices the HUD services hand to `notify_on_commit`, listed when their transaction commits (and still
    delivered by the real function)."""
    notices: list[Notice] = []
    real = services.notify_on_commit

    def record(*given: Notice, **kwargs: Any) -> None:
        transaction.on_commit(lambda: notices.extend(given))
        real(*given, **kwargs)

    monkeypatch.setattr(services, "notify_on_commit", record)
    return notices


def test_the_landlord_is_told_when_an_application_changes_status_by_someone_else(
    world: World, client: Client, sent: list[Notice]
) -> None:
    program = make_program("S8")
    application = HudApplication.objects.create(
        tenant=world.tenant_record(world.tenant), program=program, application_date=datetime.date(2026, 2, 1)
    )
    path = f"/hud-applications/{application.pk}"
    assert world.api(client, "tenant").patch(path, {"notes": "more"}).status_code == 200
    assert sent == []  # no status change
    assert world.api(client, "tenant").patch(path, {"status": "submitted"}).status_code == 200
    assert world.api(client, "manager").patch(path, {"status": "under_review"}).status_code == 200
    assert world.api(client, "landlord").patch(path, {"status": "approved"}).status_code == 200  # their own
    assert [(n.user_id, n.type) for n in sent] == [(str(world.landlord.pk), services.NOTICE_APPLICATION_STATUS)] * 2
    submitted, review = sent
    assert "S8" in submitted.message and "from draft to submitted" in submitted.message
    assert (review.title, review.priority) == ("HUD application under review", "medium")
    assert (review.reference_id, review.reference_type) == (str(application.pk), "hud_application")
    assert review.actions == ({"label": "View application", "url": f"/api/v1{path}", "type": "link"},)
    assert world.api(client, "manager").patch(path, {"status": "denied"}).status_code == 409
    assert len(sent) == 2  # a refused change tells nobody
