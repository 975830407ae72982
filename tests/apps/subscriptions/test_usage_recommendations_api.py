"""Feature access, usage recording and listing, and pricing recommendations over HTTP."""

import datetime
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from apps.subscriptions import services
from apps.subscriptions.models import PricingRecommendation, Subscription, UsageRecord
from apps.subscriptions.services import (
    ADMIN_ONLY,
    ALREADY_APPLIED,
    FEATURE_NOT_ENABLED,
    NO_CURRENT_SUBSCRIPTION,
    ONLY_OWNER_APPLIES,
    RECOMMENDATION_EXPIRED,
    RECOMMENDED_PLAN_UNAVAILABLE,
    TOO_MANY_UNITS_FOR_PLAN,
    USAGE_LIMIT_REACHED,
)
from realtime.errors import ProtocolError
from tests.apps.api_world import World
from tests.apps.subscriptions.conftest import enable, make_feature, make_plan, subscribe
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    return response.json()["error"]


# Feature access -------------------------------------------------------------------------


def test_access_comes_from_the_current_subscriptions_plan(world: World, client: Client) -> None:
    old_plan, plan = make_plan(), make_plan()
    reports, sms, ai = make_feature(), make_feature(), make_feature()
    enable(old_plan, sms)
    enable(plan, reports, usage_limit=3)
    enable(plan, ai, is_enabled=False)
    subscribe(world.landlord, old_plan, status="cancelled", start_date=datetime.date(2026, 6, 1))
    subscribe(world.landlord, plan, status="trial")
    UsageRecord.objects.create(user=world.landlord, feature=reports, usage_count=2)
    api = world.api(client, "landlord")
    body = api.get(f"/features/{reports.pk}/access").json()
    assert (body["featureId"], body["isEnabled"], body["usageLimit"], body["currentUsage"]) == (
        str(reports.pk),
        True,
        3,
        2,
    )
    assert datetime.datetime.fromisoformat(body["lastChecked"]) <= timezone.now()
    assert api.get(f"/features/{ai.pk}/access").json()["isEnabled"] is False
    assert api.get(f"/features/{sms.pk}/access").json()["isEnabled"] is False  # cancelled plan's feature
    tenant = world.api(client, "tenant").get(f"/features/{reports.pk}/access").json()  # no subscription
    assert (tenant["isEnabled"], tenant["usageLimit"], tenant["currentUsage"]) == (False, None, 0)
    assert error(api.get(f"/features/{uuid.uuid4()}/access"), 404)["code"] == "not_found"


def test_recording_usage_creates_then_increments_one_row(world: World, client: Client) -> None:
    plan, reports = make_plan(), make_feature()
    enable(plan, reports)  # unlimited
    subscribe(world.manager, plan)
    manager = world.api(client, "manager")
    first = manager.post(f"/features/{reports.pk}/usage")
    assert first.status_code == 200, first.content
    assert (first.json()["currentUsage"], first.json()["usageLimit"], first.json()["isEnabled"]) == (1, None, True)
    row = UsageRecord.objects.get(user=world.manager, feature=reports)
    assert row.usage_count == 1 and row.first_used_at == row.last_used_at
    assert manager.post(f"/features/{reports.pk}/usage").json()["currentUsage"] == 2
    row2 = UsageRecord.objects.get(user=world.manager, feature=reports)
    assert row2.pk == row.pk and row2.usage_count == 2 and row2.last_used_at > row.last_used_at
    assert row2.first_used_at == row.first_used_at


def test_usage_beyond_the_limit_is_a_conflict_and_records_nothing(world: World, client: Client) -> None:
    plan, reports = make_plan(), make_feature()
    enable(plan, reports, usage_limit=2)
    subscribe(world.landlord, plan)
    landlord = world.api(client, "landlord")
    assert [landlord.post(f"/features/{reports.pk}/usage").json()["currentUsage"] for _ in range(2)] == [1, 2]
    refused = landlord.post(f"/features/{reports.pk}/usage")
    assert error(refused, 409) == {
        "code": "conflict",
        "message": USAGE_LIMIT_REACHED,
        "usageLimit": 2,
        "currentUsage": 2,
    }
    assert UsageRecord.objects.get(user=world.landlord, feature=reports).usage_count == 2


def test_usage_of_a_feature_the_plan_lacks_is_forbidden(world: World, client: Client) -> None:
    plan, reports, off = make_plan(), make_feature(), make_feature()
    enable(plan, off, is_enabled=False)
    subscribe(world.landlord, plan)
    for who, feature in (("landlord", reports), ("landlord", off), ("tenant", reports)):
        assert (
            error(world.api(client, who).post(f"/features/{feature.pk}/usage"), 403)["message"] == FEATURE_NOT_ENABLED
        )
    assert error(world.api(client, "landlord").post(f"/features/{uuid.uuid4()}/usage"), 404)["code"] == "not_found"
    assert not UsageRecord.objects.exists()


def test_usage_list_is_your_own_and_admins_filter_by_user(world: World, client: Client) -> None:
    reports, sms = make_feature(feature_name="Reports"), make_feature(feature_name="SMS")
    mine = UsageRecord.objects.create(user=world.landlord, feature=reports, usage_count=3)
    mine_sms = UsageRecord.objects.create(user=world.landlord, feature=sms)
    theirs = UsageRecord.objects.create(user=world.manager, feature=reports)

    def ids(who: str, **params: Any) -> set[str]:
        response = world.api(client, who).get("/usage", **params)
        assert response.status_code == 200, response.content
        return {item["id"] for item in response.json()["items"]}

    assert ids("landlord") == {str(mine.pk), str(mine_sms.pk)}
    assert ids("manager") == {str(theirs.pk)}
    assert ids("tenant") == set()
    assert ids("admin") == {str(mine.pk), str(mine_sms.pk), str(theirs.pk)}
    assert ids("admin", userId=str(world.manager.pk)) == {str(theirs.pk)}
    assert ids("landlord", userId=str(world.manager.pk)) == set()
    assert ids("landlord", featureId=str(reports.pk)) == {str(mine.pk)}
    item = next(i for i in world.api(client, "landlord").get("/usage").json()["items"] if i["id"] == str(mine.pk))
    assert (item["featureName"], item["usageCount"], item["userId"]) == ("Reports", 3, str(world.landlord.pk))
    page = world.api(client, "admin").get("/usage", limit=2).json()
    assert len(page["items"]) == 2 and page["count"] == 3 and page["nextOffset"] == 2


# Pricing recommendations ----------------------------------------------------------------


def recommend(world: World, client: Client, **body: Any) -> Any:
    return world.api(client, "admin").post("/pricing-recommendations", body)


def test_admins_create_recommendations_others_may_not(world: World, client: Client) -> None:
    basic, pro = make_plan(), make_plan()
    subscribe(world.landlord, basic)
    response = recommend(
        world,
        client,
        userId=str(world.landlord.pk),
        recommendedPlanId=str(pro.pk),
        recommendationReason="You grew",
        estimatedSavings="-12.5",
        expiresAt="2030-01-01T00:00:00+00:00",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["currentPlanId"] == str(basic.pk) and body["estimatedSavings"] == "-12.50"
    assert body["isApplied"] is False and body["appliedAt"] is None and body["expiresAt"].startswith("2030-01-01")
    for who in ("tenant", "landlord", "manager"):
        refused = world.api(client, who).post(
            "/pricing-recommendations", {"userId": str(world.landlord.pk), "recommendedPlanId": str(pro.pk)}
        )
        assert error(refused, 403)["message"] == ADMIN_ONLY
    naive = recommend(
        world, client, userId=str(world.landlord.pk), recommendedPlanId=str(pro.pk), expiresAt="2030-01-01T00:00:00"
    )
    assert naive.status_code == 422
    unknown = recommend(world, client, userId=str(uuid.uuid4()), recommendedPlanId=str(pro.pk))
    assert error(unknown, 422)["fields"][0]["field"].endswith("userId")
    assert PricingRecommendation.objects.count() == 1


@pytest.mark.parametrize(("who", "status"), [("admin", 200), ("landlord", 200), ("manager", 404), ("tenant", 404)])
def test_a_recommendation_is_its_users_and_admins(world: World, client: Client, who: str, status: int) -> None:
    rec = PricingRecommendation.objects.create(user=world.landlord, recommended_plan=make_plan())
    other = PricingRecommendation.objects.create(user=world.manager, recommended_plan=make_plan(), is_applied=True)
    api = world.api(client, who)
    assert api.get(f"/pricing-recommendations/{rec.pk}").status_code == status
    listed = {item["id"] for item in api.get("/pricing-recommendations").json()["items"]}
    expected = {
        "admin": {str(rec.pk), str(other.pk)},
        "landlord": {str(rec.pk)},
        "manager": {str(other.pk)},
        "tenant": set(),
    }[who]
    assert listed == expected
    if who == "admin":
        assert {i["id"] for i in api.get("/pricing-recommendations", isApplied="true").json()["items"]} == {
            str(other.pk)
        }
        assert {
            i["id"] for i in api.get("/pricing-recommendations", userId=str(world.landlord.pk)).json()["items"]
        } == {str(rec.pk)}
        assert error(api.post(f"/pricing-recommendations/{rec.pk}/apply"), 403)["message"] == ONLY_OWNER_APPLIES
    elif status == 404:
        assert api.post(f"/pricing-recommendations/{rec.pk}/apply").status_code == 404


def test_applying_switches_the_current_subscription_plan_and_price(world: World, client: Client) -> None:
    basic = make_plan(price_per_unit=Decimal("2.00"), minimum_price=None)
    pro = make_plan(price_per_unit=Decimal("1.50"), minimum_price=Decimal("10.00"))
    sub = subscribe(world.landlord, basic, unit_count=40, current_price=Decimal("80.00"))
    rec = PricingRecommendation.objects.create(
        user=world.landlord,
        current_plan=basic,
        recommended_plan=pro,
        expires_at=timezone.now() + datetime.timedelta(days=7),
    )
    landlord = world.api(client, "landlord")
    response = landlord.post(f"/pricing-recommendations/{rec.pk}/apply")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["recommendation"]["isApplied"] is True and body["recommendation"]["appliedAt"]
    assert body["subscription"]["id"] == str(sub.pk) and body["subscription"]["planId"] == str(pro.pk)
    assert body["subscription"]["currentPrice"] == "60.00"
    sub.refresh_from_db()
    rec.refresh_from_db()
    assert (sub.plan_id, sub.current_price, rec.is_applied) == (pro.pk, Decimal("60.00"), True)
    again = landlord.post(f"/pricing-recommendations/{rec.pk}/apply")
    assert error(again, 409)["message"] == ALREADY_APPLIED


@pytest.mark.parametrize("case", ["expired", "no_subscription", "inactive_plan", "too_small"])
def test_apply_conflicts_change_nothing(world: World, client: Client, case: str) -> None:
    basic = make_plan()
    pro = make_plan(is_active=case != "inactive_plan", maximum_units=5 if case == "too_small" else None)
    sub = subscribe(world.landlord, basic, status="cancelled" if case == "no_subscription" else "active")
    expires = timezone.now() - datetime.timedelta(seconds=1) if case == "expired" else None
    rec = PricingRecommendation.objects.create(user=world.landlord, recommended_plan=pro, expires_at=expires)
    message = {
        "expired": RECOMMENDATION_EXPIRED,
        "no_subscription": NO_CURRENT_SUBSCRIPTION,
        "inactive_plan": RECOMMENDED_PLAN_UNAVAILABLE,
        "too_small": TOO_MANY_UNITS_FOR_PLAN.format(maximum=5),
    }
    response = world.api(client, "landlord").post(f"/pricing-recommendations/{rec.pk}/apply")
    assert error(response, 409) == {"code": "conflict", "message": message[case]}
    rec.refresh_from_db()
    assert rec.is_applied is False and rec.applied_at is None
    assert Subscription.objects.get(pk=sub.pk).plan_id == basic.pk


# Races: the user's row lock serializes the check and the write.


@dataclass(frozen=True)
class Caller:
    user_id: str
    user_type: str = "landlord"
    roles: tuple[str, ...] = ()

    @property
    def is_admin(self) -> bool:
        return False


def _race(calls: list[Callable[[], Any]]) -> list[str]:
    """Run the calls at once, each in its own thread and database connection; 'ok' or the error code."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> str:
        try:
            barrier.wait(timeout=5)
            call()
            return "ok"
        except ProtocolError as exc:
            return exc.code
        finally:
            connection.close()

    with ThreadPoolExecutor(len(calls)) as pool:
        return sorted(pool.map(run, calls))


@pytest.mark.django_db(transaction=True)
def test_concurrent_uses_never_exceed_the_limit() -> None:
    user, plan, feature = make_user(user_type="landlord"), make_plan(), make_feature()
    enable(plan, feature, usage_limit=3)
    subscribe(user, plan)
    caller = Caller(str(user.pk))
    results = _race([lambda: services.usage_record(caller=caller, feature_id=feature.pk) for _ in range(6)])
    assert results == ["conflict"] * 3 + ["ok"] * 3
    assert [row.usage_count for row in UsageRecord.objects.filter(user=user)] == [3]


@pytest.mark.django_db(transaction=True)
def test_concurrent_subscribes_leave_one_current_subscription() -> None:
    user, plan = make_user(user_type="landlord"), make_plan()
    caller = Caller(str(user.pk))
    results = _race(
        [
            lambda: services.subscription_create(caller=caller, data={"planId": plan.pk, "unitCount": 1})
            for _ in range(4)
        ]
    )
    assert results == ["conflict"] * 3 + ["ok"]
    assert Subscription.objects.filter(user=user).count() == 1
