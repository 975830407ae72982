"""Plans, plan features and the feature catalogue over HTTP: everyone reads, admins write."""

import uuid

import pytest
from django.test import Client

from apps.subscriptions.models import Feature, PlanFeature, SubscriptionPlan, UsageRecord
from apps.subscriptions.services import ADMIN_ONLY, DUPLICATE_FEATURES, UNKNOWN_FEATURES
from tests.apps.api_world import World
from tests.apps.subscriptions.conftest import enable, make_feature, make_plan, subscribe

pytestmark = pytest.mark.django_db

EVERYONE = ["tenant", "landlord", "manager", "admin"]
NOT_ADMIN = ["tenant", "landlord", "manager"]
NEW_PLAN = {"planName": "Growth", "pricePerUnit": "1.75", "minimumPrice": "49", "maximumUnits": 200}


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item.get("planName") or item.get("featureName") for item in response.json()["items"]]


# Plans ----------------------------------------------------------------------------------


@pytest.mark.parametrize("who", EVERYONE)
def test_everyone_authenticated_lists_and_reads_plans(world: World, client: Client, who: str) -> None:
    plan = make_plan(plan_name="Basic", price_per_unit="2.5", minimum_price=None, features={"support": "email"})
    api = world.api(client, who)
    assert names(api.get("/subscription-plans")) == ["Basic"]
    body = api.get(f"/subscription-plans/{plan.pk}").json()
    assert body["pricePerUnit"] == "2.50" and body["minimumPrice"] is None and body["maximumUnits"] is None
    assert body["isActive"] is True and body["isCustom"] is False and body["features"] == {"support": "email"}


def test_plans_without_a_token_are_refused(client: Client, db: None) -> None:
    assert client.get("/api/v1/subscription-plans").status_code == 401
    assert client.get("/api/v1/features").status_code == 401


def test_plan_filters_and_pages(world: World, client: Client) -> None:
    make_plan(plan_name="A")
    make_plan(plan_name="B", is_custom=True)
    make_plan(plan_name="C", is_active=False)
    make_plan(plan_name="D", is_custom=True, is_active=False)
    api = world.api(client, "landlord")
    assert names(api.get("/subscription-plans", isActive="true")) == ["A", "B"]
    assert names(api.get("/subscription-plans", isCustom="true")) == ["B", "D"]
    assert names(api.get("/subscription-plans", isActive="false", isCustom="false")) == ["C"]
    first = api.get("/subscription-plans", limit=3).json()
    assert [p["planName"] for p in first["items"]] == ["A", "B", "C"]
    assert (first["count"], first["nextOffset"]) == (4, 3)
    last = api.get("/subscription-plans", limit=3, offset=3).json()
    assert [p["planName"] for p in last["items"]] == ["D"] and last["nextOffset"] is None
    assert api.get("/subscription-plans", limit=101).status_code == 422
    assert api.get("/subscription-plans", isActive="maybe").status_code == 422


@pytest.mark.parametrize("who", NOT_ADMIN)
def test_only_admins_write_plans(world: World, client: Client, who: str) -> None:
    plan = make_plan(plan_name="Keep")
    api = world.api(client, who)
    for response in (
        api.post("/subscription-plans", NEW_PLAN),
        api.patch(f"/subscription-plans/{plan.pk}", {"planName": "Changed"}),
        api.delete(f"/subscription-plans/{plan.pk}"),
        api.put(f"/subscription-plans/{plan.pk}/features", {"features": []}),
    ):
        assert response.status_code == 403, response.content
        assert response.json()["error"] == {"code": "forbidden", "message": ADMIN_ONLY}
    plan.refresh_from_db()
    assert plan.plan_name == "Keep" and plan.is_active is True
    assert not SubscriptionPlan.objects.filter(plan_name="Growth").exists()


def test_admin_creates_changes_and_deactivates_a_plan(world: World, client: Client) -> None:
    admin = world.api(client, "admin")
    created = admin.post("/subscription-plans", NEW_PLAN)
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["pricePerUnit"] == "1.75" and body["minimumPrice"] == "49.00" and body["maximumUnits"] == 200
    plan_id = body["id"]
    changed = admin.patch(f"/subscription-plans/{plan_id}", {"minimumPrice": None, "isCustom": True})
    assert changed.status_code == 200 and changed.json()["minimumPrice"] is None and changed.json()["isCustom"] is True
    subscribe(world.landlord, SubscriptionPlan.objects.get(pk=plan_id))
    assert admin.delete(f"/subscription-plans/{plan_id}").status_code == 204
    plan = SubscriptionPlan.objects.get(pk=plan_id)
    assert plan.is_active is False and plan.subscriptions.count() == 1
    assert admin.get(f"/subscription-plans/{plan_id}").json()["isActive"] is False
    assert admin.patch(f"/subscription-plans/{uuid.uuid4()}", {"planName": "x"}).status_code == 404
    assert admin.delete(f"/subscription-plans/{uuid.uuid4()}").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"planName": ""},
        {"planName": "x" * 101},
        {"planName": "P", "pricePerUnit": "-1"},
        {"planName": "P", "pricePerUnit": "1.005"},
        {"planName": "P", "minimumPrice": "100000000"},
        {"planName": "P", "maximumUnits": 0},
        {"planName": "P", "extra": 1},
        {"planName": "a\u0000b"},
    ],
)
def test_invalid_plans_answer_422(world: World, client: Client, body: dict[str, object]) -> None:
    response = world.api(client, "admin").post("/subscription-plans", body)
    assert response.status_code == 422, response.content
    assert response.json()["error"]["fields"]


def test_plan_patch_refuses_null_name(world: World, client: Client) -> None:
    plan = make_plan()
    assert world.api(client, "admin").patch(f"/subscription-plans/{plan.pk}", {"planName": None}).status_code == 422


# Plan features --------------------------------------------------------------------------


@pytest.mark.parametrize("who", EVERYONE)
def test_everyone_reads_a_plans_features(world: World, client: Client, who: str) -> None:
    plan = make_plan()
    reports = make_feature(feature_name="Reports")
    enable(plan, reports, usage_limit=5)
    enable(plan, make_feature(feature_name="AI pricing"), is_enabled=False)
    response = world.api(client, who).get(f"/subscription-plans/{plan.pk}/features")
    assert response.status_code == 200, response.content
    assert response.json() == [
        {
            "featureId": response.json()[0]["featureId"],
            "featureName": "AI pricing",
            "featureCategory": "reports",
            "isEnabled": False,
            "usageLimit": None,
        },
        {
            "featureId": str(reports.pk),
            "featureName": "Reports",
            "featureCategory": "reports",
            "isEnabled": True,
            "usageLimit": 5,
        },
    ]
    assert world.api(client, who).get(f"/subscription-plans/{uuid.uuid4()}/features").status_code == 404


def test_admin_replaces_a_plans_features(world: World, client: Client) -> None:
    plan = make_plan()
    kept, dropped, added = make_feature(), make_feature(), make_feature()
    enable(plan, kept, usage_limit=1)
    enable(plan, dropped)
    body = {
        "features": [{"featureId": str(kept.pk), "usageLimit": 10}, {"featureId": str(added.pk), "isEnabled": False}]
    }
    response = world.api(client, "admin").put(f"/subscription-plans/{plan.pk}/features", body)
    assert response.status_code == 200, response.content
    rows = {(str(link.feature_id), link.is_enabled, link.usage_limit) for link in PlanFeature.objects.filter(plan=plan)}
    assert rows == {(str(kept.pk), True, 10), (str(added.pk), False, None)}
    assert {(r["featureId"], r["isEnabled"], r["usageLimit"]) for r in response.json()} == rows
    assert world.api(client, "admin").put(f"/subscription-plans/{plan.pk}/features", {"features": []}).json() == []
    assert not PlanFeature.objects.filter(plan=plan).exists()


def test_plan_features_refuse_unknown_or_repeated_ids(world: World, client: Client) -> None:
    plan = make_plan()
    feature = make_feature()
    admin = world.api(client, "admin")
    unknown = str(uuid.uuid4())
    response = admin.put(f"/subscription-plans/{plan.pk}/features", {"features": [{"featureId": unknown}]})
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["reason"] == UNKNOWN_FEATURES.format(ids=unknown)
    twice = {"features": [{"featureId": str(feature.pk)}, {"featureId": str(feature.pk), "usageLimit": 2}]}
    response = admin.put(f"/subscription-plans/{plan.pk}/features", twice)
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["reason"] == DUPLICATE_FEATURES.format(ids=feature.pk)
    bad_limit = {"features": [{"featureId": str(feature.pk), "usageLimit": -1}]}
    assert admin.put(f"/subscription-plans/{plan.pk}/features", bad_limit).status_code == 422
    assert admin.put(f"/subscription-plans/{uuid.uuid4()}/features", {"features": []}).status_code == 404
    assert not PlanFeature.objects.exists()


# Features -------------------------------------------------------------------------------


@pytest.mark.parametrize("who", EVERYONE)
def test_everyone_lists_features_by_name_and_category(world: World, client: Client, who: str) -> None:
    make_feature(feature_name="Reports", feature_category="Insights")
    make_feature(feature_name="AI pricing", feature_category="insights")
    make_feature(feature_name="Bulk SMS", feature_category="messaging")
    api = world.api(client, who)
    assert names(api.get("/features")) == ["AI pricing", "Bulk SMS", "Reports"]
    assert names(api.get("/features", category="INSIGHTS")) == ["AI pricing", "Reports"]
    page = api.get("/features", limit=2, offset=2).json()
    assert [f["featureName"] for f in page["items"]] == ["Reports"] and page["count"] == 3


@pytest.mark.parametrize("who", NOT_ADMIN)
def test_only_admins_write_features(world: World, client: Client, who: str) -> None:
    feature = make_feature(feature_name="Keep")
    api = world.api(client, who)
    assert api.post("/features", {"featureName": "New"}).status_code == 403
    assert api.patch(f"/features/{feature.pk}", {"featureName": "Changed"}).status_code == 403
    assert api.delete(f"/features/{feature.pk}").status_code == 403
    feature.refresh_from_db()
    assert feature.feature_name == "Keep" and Feature.objects.count() == 1


def test_admin_creates_changes_and_deletes_a_feature_with_its_rows(world: World, client: Client) -> None:
    admin = world.api(client, "admin")
    created = admin.post("/features", {"featureName": " Reports ", "featureCategory": "insights"})
    assert created.status_code == 201, created.content
    feature_id = created.json()["id"]
    assert created.json()["featureName"] == "Reports" and created.json()["featureDescription"] is None
    changed = admin.patch(f"/features/{feature_id}", {"featureDescription": "Monthly reports"})
    assert changed.json()["featureDescription"] == "Monthly reports" and changed.json()["featureName"] == "Reports"
    assert world.api(client, "tenant").get(f"/features/{feature_id}").json()["featureDescription"] == "Monthly reports"
    enable(make_plan(), Feature.objects.get(pk=feature_id))
    UsageRecord.objects.create(user=world.landlord, feature_id=feature_id)
    assert admin.delete(f"/features/{feature_id}").status_code == 204
    assert not Feature.objects.filter(pk=feature_id).exists()
    assert not PlanFeature.objects.exists() and not UsageRecord.objects.exists()
    assert admin.get(f"/features/{feature_id}").status_code == 404
    assert admin.delete(f"/features/{feature_id}").status_code == 404
    assert admin.post("/features", {"featureName": ""}).status_code == 422
    assert admin.post("/features", {"featureName": "x", "featureCategory": "c" * 51}).status_code == 422


def test_nul_characters_are_refused_before_the_database(world: World, client: Client) -> None:
    admin = world.api(client, "admin")
    assert admin.post("/subscription-plans", {"planName": "P", "features": {"a": ["x\u0000"]}}).status_code == 422
    assert admin.post("/subscription-plans", {"planName": "P", "features": {"k\u0000": 1}}).status_code == 422
    assert admin.get("/features", category="a\u0000").status_code == 422
    assert not SubscriptionPlan.objects.exists()
