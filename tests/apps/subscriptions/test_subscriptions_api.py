"""Subscriptions over HTTP: who sees and changes what, pricing, one current subscription per user,
filters, pages, cancellation."""

import datetime
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from apps.subscriptions.models import Subscription
from apps.subscriptions.selectors import TENANTS_HAVE_NO_SUBSCRIPTIONS
from apps.subscriptions.services import (
    ADMIN_ONLY_FIELDS,
    ALREADY_CANCELLED,
    ALREADY_SUBSCRIBED,
    CANNOT_CANCEL_EXPIRED,
    CANNOT_SUBSCRIBE,
    CUSTOM_PLAN_ADMIN_ONLY,
    NOT_CURRENT,
    PLAN_NOT_AVAILABLE,
    SUBSCRIBE_FOR_OTHERS,
    SUBSCRIBER_NOT_ELIGIBLE,
    TOO_MANY_UNITS,
)
from tests.apps.api_world import World
from tests.apps.subscriptions.conftest import make_plan, subscribe

pytestmark = pytest.mark.django_db


def ids(response: Any) -> set[str]:
    assert response.status_code == 200, response.content
    return {item["id"] for item in response.json()["items"]}


def error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    return response.json()["error"]


# Reading --------------------------------------------------------------------------------


@pytest.fixture
def owned(world: World) -> dict[str, Subscription]:
    plan = make_plan()
    return {who: subscribe(getattr(world, who), plan) for who in ("landlord", "manager", "other_landlord")}


@pytest.mark.parametrize(
    ("who", "sees"),
    [
        ("admin", {"landlord", "manager", "other_landlord"}),
        ("landlord", {"landlord"}),
        ("manager", {"manager"}),
        ("other_landlord", {"other_landlord"}),
    ],
)
def test_list_shows_own_subscriptions_and_admins_all(
    world: World, client: Client, owned: dict[str, Subscription], who: str, sees: set[str]
) -> None:
    assert ids(world.api(client, who).get("/subscriptions")) == {str(owned[name].pk) for name in sees}


def test_tenants_may_not_list_subscriptions(world: World, client: Client, owned: dict[str, Subscription]) -> None:
    assert error(world.api(client, "tenant").get("/subscriptions"), 403) == {
        "code": "forbidden",
        "message": TENANTS_HAVE_NO_SUBSCRIPTIONS,
    }


@pytest.mark.parametrize(
    ("who", "status"),
    [("admin", 200), ("landlord", 200), ("manager", 404), ("tenant", 404), ("other_landlord", 404)],
)
def test_a_subscription_is_its_owners_and_admins_others_get_404(
    world: World, client: Client, owned: dict[str, Subscription], who: str, status: int
) -> None:
    target = owned["landlord"]
    api = world.api(client, who)
    response = api.get(f"/subscriptions/{target.pk}")
    assert response.status_code == status, response.content
    patch = api.patch(f"/subscriptions/{target.pk}", {"isAutoRenew": False})
    cancel = api.post(f"/subscriptions/{target.pk}/cancel", {"reason": "x"})
    assert (patch.status_code, cancel.status_code) == (status, status)
    target.refresh_from_db()
    assert target.status == ("cancelled" if status == 200 else "active")
    if status == 404:
        assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}
        assert target.is_auto_renew is True


def test_subscription_shape(world: World, client: Client) -> None:
    plan = make_plan(plan_name="Pro")
    sub = subscribe(world.landlord, plan, end_date=datetime.date(2026, 12, 31), current_price=Decimal("120.5"))
    body = world.api(client, "landlord").get(f"/subscriptions/{sub.pk}").json()
    assert body["planId"] == str(plan.pk) and body["planName"] == "Pro" and body["userId"] == str(world.landlord.pk)
    assert body["currentPrice"] == "120.50" and body["startDate"] == "2026-01-01" and body["endDate"] == "2026-12-31"
    assert body["status"] == "active" and body["paymentFrequency"] == "monthly" and body["isAutoRenew"] is True
    assert body["cancelledAt"] is None and body["cancellationReason"] is None
    assert world.api(client, "admin").get(f"/subscriptions/{uuid.uuid4()}").status_code == 404
    assert world.api(client, "admin").get("/subscriptions/not-a-uuid").status_code in (404, 422)


def test_subscription_filters_and_pages(world: World, client: Client) -> None:
    plan = make_plan()
    a = subscribe(
        world.landlord,
        plan,
        status="expired",
        start_date=datetime.date(2024, 1, 1),
        end_date=datetime.date(2024, 12, 31),
    )
    b = subscribe(
        world.landlord,
        plan,
        status="cancelled",
        start_date=datetime.date(2025, 1, 1),
        end_date=datetime.date(2025, 6, 30),
    )
    c = subscribe(world.landlord, plan, status="active", start_date=datetime.date(2025, 7, 1))
    d = subscribe(
        world.other_landlord,
        plan,
        status="trial",
        start_date=datetime.date(2025, 3, 1),
        end_date=datetime.date(2025, 4, 1),
    )
    landlord, admin = world.api(client, "landlord"), world.api(client, "admin")
    assert ids(landlord.get("/subscriptions", status="cancelled")) == {str(b.pk)}
    assert ids(landlord.get("/subscriptions", startFrom="2025-01-01")) == {str(b.pk), str(c.pk)}
    assert ids(landlord.get("/subscriptions", startTo="2025-01-01")) == {str(a.pk), str(b.pk)}
    assert ids(landlord.get("/subscriptions", endFrom="2025-01-01")) == {str(b.pk)}
    assert ids(landlord.get("/subscriptions", endTo="2025-01-01")) == {str(a.pk)}
    assert ids(admin.get("/subscriptions", endFrom="2025-03-01", endTo="2025-06-30")) == {str(b.pk), str(d.pk)}
    assert ids(admin.get("/subscriptions", userId=str(world.other_landlord.pk))) == {str(d.pk)}
    assert ids(landlord.get("/subscriptions", userId=str(world.other_landlord.pk))) == set()  # no probing
    assert landlord.get("/subscriptions", status="paused").status_code == 422
    assert landlord.get("/subscriptions", startFrom="not-a-date").status_code == 422
    page = landlord.get("/subscriptions", limit=2).json()
    assert [s["id"] for s in page["items"]] == [str(c.pk), str(b.pk)]  # newest start first
    assert (page["count"], page["nextOffset"]) == (3, 2)
    rest = landlord.get("/subscriptions", limit=2, offset=2).json()
    assert [s["id"] for s in rest["items"]] == [str(a.pk)] and rest["nextOffset"] is None


# Subscribing ----------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["landlord", "manager"])
def test_landlords_and_managers_subscribe_themselves_at_the_plan_price(world: World, client: Client, who: str) -> None:
    plan = make_plan(price_per_unit=Decimal("2.50"), minimum_price=Decimal("20.00"))
    api = world.api(client, who)
    response = api.post("/subscriptions", {"planId": str(plan.pk), "unitCount": 12, "paymentFrequency": "annual"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["userId"] == str(getattr(world, who).pk) and body["currentPrice"] == "30.00"  # 2.50 * 12
    assert body["status"] == "active" and body["paymentFrequency"] == "annual"
    assert body["startDate"] == datetime.datetime.now(datetime.UTC).date().isoformat()
    sub = Subscription.objects.get(pk=body["id"])
    assert sub.current_price == Decimal("30.00") and sub.unit_count == 12


def test_the_minimum_price_applies_to_small_portfolios(world: World, client: Client) -> None:
    plan = make_plan(price_per_unit=Decimal("2.50"), minimum_price=Decimal("20.00"))
    response = world.api(client, "landlord").post(
        "/subscriptions", {"planId": str(plan.pk), "unitCount": 3, "status": "trial"}
    )
    assert response.status_code == 201 and response.json()["currentPrice"] == "20.00"
    assert response.json()["status"] == "trial"


def test_tenants_may_not_subscribe(world: World, client: Client) -> None:
    plan = make_plan()
    response = world.api(client, "tenant").post("/subscriptions", {"planId": str(plan.pk), "unitCount": 1})
    assert error(response, 403)["message"] == CANNOT_SUBSCRIBE
    assert not Subscription.objects.exists()


def test_non_admins_subscribe_only_themselves_at_the_plan_price(world: World, client: Client) -> None:
    plan = make_plan()
    landlord = world.api(client, "landlord")
    other = {"planId": str(plan.pk), "unitCount": 1, "userId": str(world.other_landlord.pk)}
    assert error(landlord.post("/subscriptions", other), 403)["message"] == SUBSCRIBE_FOR_OTHERS
    priced = {"planId": str(plan.pk), "unitCount": 1, "currentPrice": "1.00"}
    assert error(landlord.post("/subscriptions", priced), 403)["message"] == ADMIN_ONLY_FIELDS.format(
        fields="currentPrice"
    )
    assert not Subscription.objects.exists()


def test_admin_subscribes_a_landlord_at_a_chosen_price_and_on_custom_plans(world: World, client: Client) -> None:
    custom = make_plan(is_custom=True)
    admin = world.api(client, "admin")
    body = {
        "planId": str(custom.pk),
        "unitCount": 5,
        "userId": str(world.other_landlord.pk),
        "currentPrice": "9.99",
        "startDate": "2026-02-01",
        "endDate": "2027-01-31",
        "isAutoRenew": False,
    }
    response = admin.post("/subscriptions", body)
    assert response.status_code == 201, response.content
    assert response.json()["currentPrice"] == "9.99" and response.json()["userId"] == str(world.other_landlord.pk)
    assert response.json()["endDate"] == "2027-01-31" and response.json()["isAutoRenew"] is False
    tenant = {"planId": str(custom.pk), "unitCount": 5, "userId": str(world.tenant.pk)}
    assert error(admin.post("/subscriptions", tenant), 422)["fields"][0]["reason"] == SUBSCRIBER_NOT_ELIGIBLE
    # A landlord may not pick a custom plan.
    own = world.api(client, "landlord").post("/subscriptions", {"planId": str(custom.pk), "unitCount": 1})
    assert error(own, 422)["fields"][0]["reason"] == CUSTOM_PLAN_ADMIN_ONLY


def test_a_second_current_subscription_is_a_conflict(world: World, client: Client) -> None:
    plan = make_plan()
    landlord = world.api(client, "landlord")
    assert landlord.post("/subscriptions", {"planId": str(plan.pk), "unitCount": 1}).status_code == 201
    again = landlord.post("/subscriptions", {"planId": str(plan.pk), "unitCount": 2, "status": "trial"})
    assert error(again, 409) == {"code": "conflict", "message": ALREADY_SUBSCRIBED}
    admin_too = world.api(client, "admin").post(
        "/subscriptions", {"planId": str(plan.pk), "unitCount": 2, "userId": str(world.landlord.pk)}
    )
    assert error(admin_too, 409)["message"] == ALREADY_SUBSCRIBED
    Subscription.objects.filter(user=world.landlord).update(status="expired")
    assert landlord.post("/subscriptions", {"planId": str(plan.pk), "unitCount": 3}).status_code == 201
    assert Subscription.objects.filter(user=world.landlord).count() == 2


def test_plan_and_unit_rules(world: World, client: Client) -> None:
    small = make_plan(maximum_units=10)
    closed = make_plan(is_active=False)
    landlord = world.api(client, "landlord")
    too_many = landlord.post("/subscriptions", {"planId": str(small.pk), "unitCount": 11})
    assert error(too_many, 422)["fields"] == [
        {"field": "body.payload.unitCount", "reason": TOO_MANY_UNITS.format(maximum=10)}
    ]
    for plan_id in (closed.pk, uuid.uuid4()):
        refused = landlord.post("/subscriptions", {"planId": str(plan_id), "unitCount": 1})
        assert error(refused, 422)["fields"][0]["reason"] == PLAN_NOT_AVAILABLE
    ends_early = {"planId": str(small.pk), "unitCount": 1, "startDate": "2026-05-01", "endDate": "2026-04-30"}
    assert error(landlord.post("/subscriptions", ends_early), 422)["fields"][0]["field"].endswith("endDate")
    assert not Subscription.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"unitCount": 1},
        {"planId": "PLAN", "unitCount": 0},
        {"planId": "PLAN", "unitCount": -1},
        {"planId": "PLAN", "unitCount": 2**31},
        {"planId": "PLAN", "unitCount": 1, "status": "cancelled"},
        {"planId": "PLAN", "unitCount": 1, "paymentFrequency": "weekly"},
        {"planId": "PLAN", "unitCount": 1, "x": 1},
        {"planId": "PLAN", "unitCount": "many"},
    ],
)
def test_invalid_subscription_bodies_answer_422(world: World, client: Client, body: dict[str, Any]) -> None:
    plan = make_plan()
    body = {key: (str(plan.pk) if value == "PLAN" else value) for key, value in body.items()}
    response = world.api(client, "landlord").post("/subscriptions", body)
    assert error(response, 422)["fields"]
    assert not Subscription.objects.exists()


def test_a_price_beyond_decimal_10_2_is_refused(world: World, client: Client) -> None:
    plan = make_plan(price_per_unit=Decimal("99999999.99"))
    response = world.api(client, "landlord").post("/subscriptions", {"planId": str(plan.pk), "unitCount": 2})
    assert error(response, 422)["fields"][0]["field"].endswith("unitCount")


# Changing -------------------------------------------------------------------------------


def test_owner_changes_units_and_plan_and_the_price_follows(world: World, client: Client) -> None:
    basic = make_plan(price_per_unit=Decimal("2.00"), minimum_price=Decimal("0"))
    pro = make_plan(price_per_unit=Decimal("3.00"), minimum_price=Decimal("100.00"))
    sub = subscribe(world.landlord, basic, unit_count=10, current_price=Decimal("20.00"))
    landlord = world.api(client, "landlord")
    more = landlord.patch(f"/subscriptions/{sub.pk}", {"unitCount": 20})
    assert more.status_code == 200 and more.json()["currentPrice"] == "40.00"
    moved = landlord.patch(f"/subscriptions/{sub.pk}", {"planId": str(pro.pk), "isAutoRenew": False})
    assert moved.json()["planId"] == str(pro.pk) and moved.json()["currentPrice"] == "100.00"
    assert moved.json()["isAutoRenew"] is False
    sub.refresh_from_db()
    assert (sub.plan_id, sub.current_price, sub.unit_count) == (pro.pk, Decimal("100.00"), 20)


def test_owners_may_not_set_admin_fields_or_change_ended_subscriptions(world: World, client: Client) -> None:
    sub = subscribe(world.landlord, make_plan())
    landlord = world.api(client, "landlord")
    refused = landlord.patch(f"/subscriptions/{sub.pk}", {"currentPrice": "1.00", "status": "trial"})
    assert error(refused, 403)["message"] == ADMIN_ONLY_FIELDS.format(fields="currentPrice, status")
    Subscription.objects.filter(pk=sub.pk).update(status="expired")
    assert error(landlord.patch(f"/subscriptions/{sub.pk}", {"unitCount": 2}), 409)["message"] == NOT_CURRENT
    assert landlord.patch(f"/subscriptions/{sub.pk}", {"unitCount": None}).status_code == 422


def test_admin_sets_price_status_and_dates_keeping_one_current_subscription(world: World, client: Client) -> None:
    plan = make_plan()
    old = subscribe(world.landlord, plan, status="cancelled", cancellation_reason="moved")
    current = subscribe(world.landlord, plan)
    admin = world.api(client, "admin")
    changed = admin.patch(
        f"/subscriptions/{current.pk}", {"currentPrice": "5.00", "endDate": "2026-06-30", "status": "trial"}
    )
    assert changed.status_code == 200, changed.content
    assert (changed.json()["currentPrice"], changed.json()["endDate"], changed.json()["status"]) == (
        "5.00",
        "2026-06-30",
        "trial",
    )
    assert error(admin.patch(f"/subscriptions/{old.pk}", {"status": "active"}), 409)["message"] == ALREADY_SUBSCRIBED
    assert admin.patch(f"/subscriptions/{current.pk}", {"status": "expired"}).status_code == 200
    revived = admin.patch(f"/subscriptions/{old.pk}", {"status": "active"})
    assert revived.status_code == 200 and revived.json()["cancellationReason"] is None
    assert admin.patch(f"/subscriptions/{old.pk}", {"status": "cancelled"}).status_code == 422
    early = admin.patch(f"/subscriptions/{old.pk}", {"endDate": "2025-12-31"})
    assert error(early, 422)["fields"][0]["field"].endswith("endDate")


# Cancelling -----------------------------------------------------------------------------


def test_cancel_records_when_and_why_and_twice_is_a_conflict(world: World, client: Client) -> None:
    sub = subscribe(world.manager, make_plan())
    manager = world.api(client, "manager")
    response = manager.post(f"/subscriptions/{sub.pk}/cancel", {"reason": "  Too expensive "})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "cancelled" and body["cancellationReason"] == "Too expensive"
    assert body["cancelledAt"] and body["isAutoRenew"] is False
    sub.refresh_from_db()
    assert sub.status == "cancelled" and sub.cancelled_at is not None
    again = manager.post(f"/subscriptions/{sub.pk}/cancel", {"reason": "again"})
    assert error(again, 409) == {"code": "conflict", "message": ALREADY_CANCELLED}
    sub.refresh_from_db()
    assert sub.cancellation_reason == "Too expensive"


def test_cancel_without_reason_and_expired_is_a_conflict(world: World, client: Client) -> None:
    plan = make_plan()
    sub = subscribe(world.landlord, plan)
    assert world.api(client, "admin").post(f"/subscriptions/{sub.pk}/cancel", {}).json()["cancellationReason"] is None
    expired = subscribe(world.landlord, plan, status="expired")
    response = world.api(client, "landlord").post(f"/subscriptions/{expired.pk}/cancel", {})
    assert error(response, 409)["message"] == CANNOT_CANCEL_EXPIRED
    landlord = world.api(client, "landlord")
    assert landlord.post(f"/subscriptions/{sub.pk}/cancel", {"reason": "x" * 2001}).status_code == 422


def test_cancel_needs_no_body(world: World, client: Client) -> None:
    sub = subscribe(world.landlord, make_plan())
    api = world.api(client, "landlord")
    response = client.generic(
        "POST", f"/api/v1/subscriptions/{sub.pk}/cancel", b"", content_type="application/json", **api.headers
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled" and response.json()["cancellationReason"] is None
