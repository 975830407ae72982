"""The seed's subscription caches: each is filled by a read, dropped after the commit of any change of its
source (over HTTP or through the ORM), so the read after a write equals the database; Redis down changes
nothing the client sees."""

import datetime
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import redis
from django.db import transaction
from django.test import Client

from apps.accounts.services import user_admin_delete
from apps.subscriptions import services
from apps.subscriptions.models import (
    Feature,
    PlanFeature,
    PricingRecommendation,
    Subscription,
    SubscriptionPlan,
    UsageRecord,
)
from tests.apps.api_world import World, build_world
from tests.apps.subscriptions.conftest import enable, make_feature, make_plan, subscribe

pytestmark = pytest.mark.django_db

CURRENT = ("active", "trial")


# What each cache must say, computed straight from PostgreSQL.


def db_current(user: Any) -> Subscription | None:
    return (
        Subscription.objects.filter(user=user, status__in=CURRENT)
        .select_related("plan")
        .order_by("-start_date", "-created_at")
        .first()
    )


def db_status(user: Any) -> dict[str, Any] | None:
    sub = db_current(user)
    if sub is None:
        return None
    return {
        "planId": str(sub.plan_id) if sub.plan_id else None,
        "planName": sub.plan.plan_name if sub.plan else None,
        "status": sub.status,
        "unitCount": sub.unit_count,
        "startDate": sub.start_date.isoformat(),
        "endDate": sub.end_date.isoformat() if sub.end_date else None,
        "isAutoRenew": bool(sub.is_auto_renew),
    }


def db_access(user: Any, feature_id: Any) -> dict[str, Any] | None:
    if not Feature.objects.filter(pk=feature_id).exists():
        return None
    sub = db_current(user)
    link = PlanFeature.objects.filter(plan_id=sub.plan_id, feature_id=feature_id).first() if sub else None
    used = sum(row.usage_count or 0 for row in UsageRecord.objects.filter(user=user, feature_id=feature_id))
    return {
        "featureId": str(feature_id),
        "isEnabled": bool(link and link.is_enabled),
        "usageLimit": link.usage_limit if link else None,
        "currentUsage": used,
    }


def status(world: World, client: Client, who: str = "landlord") -> dict[str, Any] | None:
    response = world.api(client, who).get("/subscriptions/status")
    if response.status_code == 404:
        assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}
        return None
    assert response.status_code == 200, response.content
    return response.json()


def access(world: World, client: Client, feature_id: Any, who: str = "landlord") -> dict[str, Any] | None:
    response = world.api(client, who).get(f"/features/{feature_id}/access")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.content
    body = response.json()
    datetime.datetime.fromisoformat(body.pop("lastChecked"))  # an ISO timestamp, or this raises
    return body


@pytest.fixture
def shop(world: World) -> dict[str, Any]:
    """Two plans with feature rows; the landlord on `basic`, the manager on `pro`."""
    basic = make_plan(plan_name="Basic", price_per_unit=Decimal("2.00"), minimum_price=None)
    pro = make_plan(plan_name="Pro", price_per_unit=Decimal("3.00"), minimum_price=None)
    reports, sms = make_feature(feature_name="Reports"), make_feature(feature_name="SMS")
    enable(basic, reports, usage_limit=5)
    enable(pro, reports, usage_limit=50)
    enable(pro, sms)
    landlord_sub = subscribe(world.landlord, basic, end_date=datetime.date(2026, 12, 31))
    manager_sub = subscribe(world.manager, pro, status="trial")
    UsageRecord.objects.create(user=world.landlord, feature=reports, usage_count=2)
    return {
        "basic": basic,
        "pro": pro,
        "reports": reports,
        "sms": sms,
        "landlord_sub": landlord_sub,
        "manager_sub": manager_sub,
    }


# subscription:status:{userId}


def test_status_fills_the_hash_with_the_seed_fields(
    world: World, client: Client, clean_redis: redis.Redis, shop: dict[str, Any]
) -> None:
    key = f"subscription:status:{world.landlord.pk}"
    assert status(world, client) == db_status(world.landlord)
    cached = clean_redis.hgetall(key)
    assert cached == {
        "planId": str(shop["basic"].pk),
        "planName": "Basic",
        "status": "active",
        "unitCount": "10",
        "startDate": "2026-01-01",
        "endDate": "2026-12-31",
        "isAutoRenew": "1",
    }
    assert 3500 < clean_redis.ttl(key) <= 3600
    clean_redis.hset(key, "planName", "from the cache")  # the next read is served from Redis
    assert status(world, client)["planName"] == "from the cache"  # type: ignore[index]
    # The manager's trial has no end date: the field is left out, and read back as null.
    assert status(world, client, "manager")["endDate"] is None  # type: ignore[index]
    assert "endDate" not in clean_redis.hgetall(f"subscription:status:{world.manager.pk}")


def test_status_without_a_current_subscription_is_404_and_caches_nothing(
    world: World, client: Client, clean_redis: redis.Redis
) -> None:
    subscribe(world.landlord, make_plan(), status="cancelled")
    assert status(world, client) is None
    assert status(world, client, "tenant") is None
    assert not list(clean_redis.scan_iter("subscription:status:*"))


def _with(obj: Any, **fields: Any) -> Any:
    for name, value in fields.items():
        setattr(obj, name, value)
    return obj


def _set(obj: Any, **fields: Any) -> Any:
    _with(obj, **fields).save()
    return obj


STATUS_WRITES: dict[str, Callable[[World, Client, dict[str, Any]], Any]] = {
    "patch_units": lambda w, c, s: w.api(c, "landlord").patch(
        f"/subscriptions/{s['landlord_sub'].pk}", {"unitCount": 12}
    ),
    "patch_plan": lambda w, c, s: w.api(c, "landlord").patch(
        f"/subscriptions/{s['landlord_sub'].pk}", {"planId": str(s["pro"].pk)}
    ),
    "admin_dates": lambda w, c, s: w.api(c, "admin").patch(
        f"/subscriptions/{s['landlord_sub'].pk}", {"endDate": None, "status": "trial"}
    ),
    "cancel": lambda w, c, s: w.api(c, "landlord").post(f"/subscriptions/{s['landlord_sub'].pk}/cancel", {}),
    "cancel_then_subscribe": lambda w, c, s: (
        w.api(c, "landlord").post(f"/subscriptions/{s['landlord_sub'].pk}/cancel", {}),
        w.api(c, "landlord").post("/subscriptions", {"planId": str(s["pro"].pk), "unitCount": 3}),
    )[1],
    "plan_renamed": lambda w, c, s: w.api(c, "admin").patch(
        f"/subscription-plans/{s['basic'].pk}", {"planName": "Basic 2"}
    ),
    "apply_recommendation": lambda w, c, s: w.api(c, "landlord").post(
        f"/pricing-recommendations/{PricingRecommendation.objects.create(user=w.landlord, recommended_plan=s['pro']).pk}"
        "/apply"
    ),
    # Changed in issue 10: the drops are explicit calls of the services, no longer model signals, so
    # the writes outside the API go through the admin site's services (`test_a_bare_orm_write_drops_nothing`).
    "admin_save": lambda w, c, s: services.subscription_admin_save(
        subscription=_with(Subscription.objects.get(pk=s["landlord_sub"].pk), is_auto_renew=False)
    ),
    "admin_delete": lambda w, c, s: services.subscription_admin_delete(
        subscription=Subscription.objects.get(pk=s["landlord_sub"].pk)
    ),
    "admin_moved_to_other_user": lambda w, c, s: services.subscription_admin_save(
        subscription=_with(
            Subscription.objects.get(pk=s["manager_sub"].pk), user=w.landlord, start_date=datetime.date(2026, 3, 1)
        )
    ),
    "admin_plan_renamed": lambda w, c, s: services.plan_admin_save(
        plan=_with(SubscriptionPlan.objects.get(pk=s["pro"].pk), plan_name="Pro 2")
    ),
    "user_deleted": lambda w, c, s: user_admin_delete(user=w.landlord),
}


@pytest.mark.parametrize("write", list(STATUS_WRITES))
def test_status_is_never_stale_after_a_write(
    world: World,
    client: Client,
    clean_redis: redis.Redis,
    django_capture_on_commit_callbacks,
    shop: dict[str, Any],
    write: str,
) -> None:
    users = {"landlord": world.landlord, "manager": world.manager}
    for who in ("landlord", "manager", "admin"):
        world.api(client, who)  # log in before a user may be deleted
    for who in users:
        status(world, client, who)
    landlord_id = world.landlord.pk  # delete() clears the instance's pk
    assert clean_redis.exists(f"subscription:status:{landlord_id}")
    with django_capture_on_commit_callbacks(execute=True):
        response = STATUS_WRITES[write](world, client, shop)
    assert getattr(response, "status_code", 200) < 300, getattr(response, "content", b"")
    if write == "user_deleted":
        assert not clean_redis.exists(f"subscription:status:{landlord_id}")
        users.pop("landlord")
    for who, user in users.items():
        assert status(world, client, who) == db_status(user), who


def test_a_bare_orm_write_drops_nothing(
    world: World, client: Client, clean_redis: redis.Redis, django_capture_on_commit_callbacks, shop: dict[str, Any]
) -> None:
    """Documented behaviour (issue 10): no model signal drops these caches any more. A row written
    with the bare ORM (a shell, a script) leaves them until their TTL; code that writes outside the
    services must call the drops of `apps/subscriptions/caches.py` (as the services do)."""
    status(world, client, "landlord")
    access(world, client, shop["reports"].pk, "landlord")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        _set(Subscription.objects.get(pk=shop["landlord_sub"].pk), is_auto_renew=False)
        UsageRecord.objects.create(user=world.landlord, feature=shop["reports"], usage_count=1)
    assert callbacks == []
    assert clean_redis.hget(f"subscription:status:{world.landlord.pk}", "isAutoRenew") == "1"
    assert clean_redis.exists(f"feature:access:{world.landlord.pk}:{shop['reports'].pk}")


# feature:access:{userId}:{featureId}


def test_access_fills_the_hash_with_the_seed_fields(
    world: World, client: Client, clean_redis: redis.Redis, shop: dict[str, Any]
) -> None:
    reports, sms = shop["reports"].pk, shop["sms"].pk
    assert (
        access(world, client, reports)
        == db_access(world.landlord, reports)
        == {"featureId": str(reports), "isEnabled": True, "usageLimit": 5, "currentUsage": 2}
    )
    key = f"feature:access:{world.landlord.pk}:{reports}"
    cached: dict[str, str] = clean_redis.hgetall(key)  # type: ignore[assignment]  # a decoded client
    assert {k: v for k, v in cached.items() if k != "lastChecked"} == {
        "isEnabled": "1",
        "usageLimit": "5",
        "currentUsage": "2",
    }
    assert datetime.datetime.fromisoformat(cached["lastChecked"]).tzinfo is not None
    assert 800 < clean_redis.ttl(key) <= 900
    clean_redis.hset(key, "currentUsage", "4")  # the next read is served from Redis
    assert access(world, client, reports)["currentUsage"] == 4  # type: ignore[index]
    # Unlimited: no usageLimit field, read back as null.
    assert access(world, client, sms, "manager")["usageLimit"] is None  # type: ignore[index]
    assert "usageLimit" not in clean_redis.hgetall(f"feature:access:{world.manager.pk}:{sms}")


def _admin_form_style_edit(shop: dict[str, Any]) -> None:
    """What the plan's admin page does: save the plan (its service), then bulk-edit its feature rows."""
    with transaction.atomic():
        services.plan_admin_save(plan=_with(SubscriptionPlan.objects.get(pk=shop["basic"].pk), plan_description="e"))
        PlanFeature.objects.filter(plan=shop["basic"]).update(is_enabled=False)
        PlanFeature.objects.bulk_create([PlanFeature(plan=shop["basic"], feature=shop["sms"])])


def _usage_admin_delete_all(user: Any) -> None:
    for row in UsageRecord.objects.filter(user=user):
        services.usage_admin_delete(row=row)


ACCESS_WRITES: dict[str, Callable[[World, Client, dict[str, Any]], Any]] = {
    "record_usage": lambda w, c, s: w.api(c, "landlord").post(f"/features/{s['reports'].pk}/usage"),
    "record_usage_twice": lambda w, c, s: (
        w.api(c, "manager").post(f"/features/{s['sms'].pk}/usage"),
        w.api(c, "manager").post(f"/features/{s['sms'].pk}/usage"),
    )[1],
    "admin_usage_added": lambda w, c, s: services.usage_admin_save(
        row=UsageRecord(user=w.landlord, feature=s["reports"])
    ),
    "admin_usage_deleted": lambda w, c, s: _usage_admin_delete_all(w.landlord),
    "admin_usage_moved": lambda w, c, s: services.usage_admin_save(
        row=_with(UsageRecord.objects.get(user=w.landlord), user=w.manager)
    ),
    "put_plan_features": lambda w, c, s: w.api(c, "admin").put(
        f"/subscription-plans/{s['basic'].pk}/features",
        {"features": [{"featureId": str(s["reports"].pk), "usageLimit": 1}, {"featureId": str(s["sms"].pk)}]},
    ),
    "put_plan_features_empty": lambda w, c, s: w.api(c, "admin").put(
        f"/subscription-plans/{s['pro'].pk}/features", {"features": []}
    ),
    "plan_feature_disabled": lambda w, c, s: w.api(c, "admin").put(
        f"/subscription-plans/{s['pro'].pk}/features",
        {
            "features": [
                {"featureId": str(s["reports"].pk), "usageLimit": 50},
                {"featureId": str(s["sms"].pk), "isEnabled": False},
            ]
        },
    ),
    "admin_form_bulk_edit": lambda w, c, s: _admin_form_style_edit(s),
    "cancel": lambda w, c, s: w.api(c, "manager").post(f"/subscriptions/{s['manager_sub'].pk}/cancel", {}),
    "switch_plan": lambda w, c, s: w.api(c, "landlord").patch(
        f"/subscriptions/{s['landlord_sub'].pk}", {"planId": str(s["pro"].pk)}
    ),
    "subscribe": lambda w, c, s: w.api(c, "admin").post(
        "/subscriptions", {"planId": str(s["pro"].pk), "unitCount": 1, "userId": str(w.other_landlord.pk)}
    ),
    "apply_recommendation": lambda w, c, s: w.api(c, "landlord").post(
        f"/pricing-recommendations/{PricingRecommendation.objects.create(user=w.landlord, recommended_plan=s['pro']).pk}"
        "/apply"
    ),
    "feature_deleted": lambda w, c, s: w.api(c, "admin").delete(f"/features/{s['reports'].pk}"),
}


@pytest.mark.parametrize("write", list(ACCESS_WRITES))
def test_access_is_never_stale_after_a_write(
    world: World,
    client: Client,
    clean_redis: redis.Redis,
    django_capture_on_commit_callbacks,
    shop: dict[str, Any],
    write: str,
) -> None:
    pairs = [(who, feature) for who in ("landlord", "manager", "other_landlord") for feature in ("reports", "sms")]
    for who, feature in pairs:
        access(world, client, shop[feature].pk, who)
    assert len(list(clean_redis.scan_iter("feature:access:*"))) == len(pairs)
    with django_capture_on_commit_callbacks(execute=True):
        response = ACCESS_WRITES[write](world, client, shop)
    assert getattr(response, "status_code", 200) < 300, getattr(response, "content", b"")
    for who, feature in pairs:
        feature_id = shop[feature].pk
        assert access(world, client, feature_id, who) == db_access(getattr(world, who), feature_id), (who, feature)


def test_usage_response_equals_the_next_read(
    world: World, client: Client, clean_redis: redis.Redis, django_capture_on_commit_callbacks, shop: dict[str, Any]
) -> None:
    reports = shop["reports"].pk
    access(world, client, reports)
    with django_capture_on_commit_callbacks(execute=True):
        recorded = world.api(client, "landlord").post(f"/features/{reports}/usage").json()
    recorded.pop("lastChecked")
    assert recorded == access(world, client, reports) == db_access(world.landlord, reports)
    assert recorded["currentUsage"] == 3


# Real commits (no captured callbacks): the drop runs when the service's transaction commits.


@pytest.mark.django_db(transaction=True)
def test_drops_happen_on_real_commit(client: Client, clean_redis: redis.Redis) -> None:
    world = build_world()
    plan, other = make_plan(plan_name="Basic"), make_plan(plan_name="Pro")
    feature = make_feature()
    enable(plan, feature, usage_limit=2)
    landlord = world.api(client, "landlord")
    assert landlord.post("/subscriptions", {"planId": str(plan.pk), "unitCount": 4}).status_code == 201
    assert status(world, client)["planName"] == "Basic"  # type: ignore[index]
    assert access(world, client, feature.pk)["currentUsage"] == 0  # type: ignore[index]
    assert landlord.post(f"/features/{feature.pk}/usage").status_code == 200
    assert access(world, client, feature.pk) == db_access(world.landlord, feature.pk)
    assert access(world, client, feature.pk)["currentUsage"] == 1  # type: ignore[index]
    sub = Subscription.objects.get(user=world.landlord)
    assert landlord.patch(f"/subscriptions/{sub.pk}", {"planId": str(other.pk)}).status_code == 200
    assert status(world, client)["planName"] == "Pro"  # type: ignore[index]
    assert access(world, client, feature.pk)["isEnabled"] is False  # type: ignore[index]
    assert (
        world.api(client, "admin")
        .put(f"/subscription-plans/{other.pk}/features", {"features": [{"featureId": str(feature.pk)}]})
        .status_code
        == 200
    )
    assert access(world, client, feature.pk) == db_access(world.landlord, feature.pk)
    assert access(world, client, feature.pk)["isEnabled"] is True  # type: ignore[index]
    assert landlord.post(f"/subscriptions/{sub.pk}/cancel", {}).status_code == 200
    assert status(world, client) is None


# Redis down


def test_both_caches_answer_from_postgres_while_redis_is_down(
    world: World,
    client: Client,
    django_capture_on_commit_callbacks,
    request: pytest.FixtureRequest,
    shop: dict[str, Any],
) -> None:
    for who in ("landlord", "manager", "admin"):
        world.api(client, who)  # log in while Redis is up (sessions fall back to PostgreSQL too)
    request.getfixturevalue("redis_down")
    reports = shop["reports"].pk
    assert status(world, client) == db_status(world.landlord)
    assert access(world, client, reports) == db_access(world.landlord, reports)
    with django_capture_on_commit_callbacks(execute=True):
        recorded = world.api(client, "landlord").post(f"/features/{reports}/usage")
        switched = world.api(client, "landlord").patch(
            f"/subscriptions/{shop['landlord_sub'].pk}", {"planId": str(shop["pro"].pk)}
        )
    assert recorded.status_code == 200 and recorded.json()["currentUsage"] == 3
    assert switched.status_code == 200
    assert status(world, client) == db_status(world.landlord)
    assert status(world, client)["planName"] == "Pro"  # type: ignore[index]
    assert access(world, client, reports) == db_access(world.landlord, reports)
    assert access(world, client, reports)["usageLimit"] == 50  # type: ignore[index]
