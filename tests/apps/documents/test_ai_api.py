"""AI training data and models over HTTP: admin only, validated input, validate and activate."""

from typing import Any

import pytest
from bson import ObjectId

from apps.documents.ai import VERSION_TAKEN
from apps.documents.ai_api import ADMINS_ONLY
from tests.apps.api_world import World
from tests.apps.documents.conftest import AsyncApi

pytestmark = pytest.mark.django_db(transaction=True)

Apis = dict[str, AsyncApi]

EXAMPLE = {
    "dataType": "pricing",
    "features": [2, 1.5, "IL", None],
    "labels": [1450.0],
    "source": "unit-history",
    "timestamp": "2026-05-01T12:00:00Z",
    "metadata": {"propertyType": "apartment"},
}


def model(name: str, version: str, **extra: Any) -> dict[str, Any]:
    return {
        "modelName": name,
        "modelType": "pricing",
        "version": version,
        "parameters": {"depth": 6},
        "performance": {"accuracy": 0.91, "precision": 0.88, "recall": 0.8, "f1Score": 0.84},
        "trainedAt": "2026-06-01T00:00:00Z",
        "modelUrl": "s3://models/rent/1.bin",
        **extra,
    }


@pytest.mark.parametrize("who", ["tenant", "landlord", "manager"])
async def test_everything_is_admin_only(world: World, apis: Apis, who: str) -> None:
    api = apis[who]
    some_id = str(ObjectId())
    for response in (
        await api.post("/ai/training-data", EXAMPLE),
        await api.get("/ai/training-data"),
        await api.post(f"/ai/training-data/{some_id}/validate"),
        await api.post("/ai/models", model("m", "1")),
        await api.get("/ai/models"),
        await api.post(f"/ai/models/{some_id}/activate"),
    ):
        assert response.status_code == 403, response.content
        assert response.json()["error"] == {"code": "forbidden", "message": ADMINS_ONLY}


async def test_training_data_is_added_listed_by_filter_and_validated(world: World, apis: Apis) -> None:
    api = apis["admin"]
    data_type = f"pricing-{ObjectId()}"
    created = await api.post("/ai/training-data", {**EXAMPLE, "dataType": data_type})
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["features"] == [2, 1.5, "IL", None] and body["labels"] == [1450.0]
    assert body["isValidated"] is False and body["validatedBy"] is None
    assert body["timestamp"] == "2026-05-01T12:00:00Z" and body["createdAt"] == body["updatedAt"]
    second = (await api.post("/ai/training-data", {**EXAMPLE, "dataType": data_type})).json()
    validated = await api.post(f"/ai/training-data/{body['id']}/validate")
    assert validated.status_code == 200
    after = validated.json()
    assert after["isValidated"] is True and after["validatedBy"] == str(world.admin.pk)
    assert after["updatedAt"] >= body["updatedAt"]
    everything = (await api.get("/ai/training-data", dataType=data_type)).json()
    assert everything["count"] == 2
    yes = (await api.get("/ai/training-data", dataType=data_type, isValidated="true")).json()
    no = (await api.get("/ai/training-data", dataType=data_type, isValidated="false")).json()
    assert [item["id"] for item in yes["items"]] == [body["id"]] and yes["items"][0]["isValidated"] is True
    assert [item["id"] for item in no["items"]] == [second["id"]]
    assert (await api.post(f"/ai/training-data/{ObjectId()}/validate")).status_code == 404
    assert (await api.post("/ai/training-data/xyz/validate")).status_code == 422


@pytest.mark.parametrize(
    "change",
    [
        {"dataType": ""},
        {"features": "not a list"},
        {"source": None},
        {"unknown": 1},
        {"timestamp": "yesterday"},
        {"features": [2**70]},
        {"metadata": {"$where": "1"}},
        {"metadata": {"a.b": 1}},
        {"labels": [{"\u0000": 1}]},
    ],
)
async def test_training_data_input_is_validated(world: World, apis: Apis, change: dict[str, Any]) -> None:
    response = await apis["admin"].post("/ai/training-data", {**EXAMPLE, **change})
    assert response.status_code == 422, response.content


@pytest.mark.parametrize(
    "change",
    [
        {"performance": {"accuracy": 1.2}},
        {"performance": {"recall": -0.1}},
        {"version": ""},
        {"modelUrl": "javascript:alert(1)"},
        {"isActive": "sometimes"},
        {"parameters": {"depth": -(2**64)}},
    ],
)
async def test_model_input_is_validated(world: World, apis: Apis, change: dict[str, Any]) -> None:
    response = await apis["admin"].post("/ai/models", {**model("rent", "1"), **change})
    assert response.status_code == 422, response.content


async def test_models_activate_one_version_at_a_time(world: World, apis: Apis) -> None:
    api = apis["admin"]
    name = f"rent-{ObjectId()}"
    first = await api.post("/ai/models", model(name, "1.0", isActive=True))
    assert first.status_code == 201, first.content
    v1 = first.json()
    assert v1["isActive"] is True and v1["createdBy"] == str(world.admin.pk) and v1["deployedAt"] is not None
    assert v1["performance"] == {"accuracy": 0.91, "precision": 0.88, "recall": 0.8, "f1Score": 0.84}
    v2 = (await api.post("/ai/models", model(name, "2.0", isActive=True))).json()
    v3 = (await api.post("/ai/models", model(name, "3.0"))).json()
    other = (await api.post("/ai/models", model(f"{name}-other", "1.0", isActive=True))).json()
    duplicate = await api.post("/ai/models", model(name, "2.0"))
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["message"] == VERSION_TAKEN.format(version="2.0")

    async def active() -> list[str]:
        listed = (await api.get("/ai/models", modelName=name, isActive="true")).json()
        return [item["version"] for item in listed["items"]]

    assert await active() == ["2.0"]
    activated = await api.post(f"/ai/models/{v3['id']}/activate")
    assert activated.status_code == 200 and activated.json()["isActive"] is True
    assert activated.json()["deployedAt"] is not None
    assert await active() == ["3.0"]
    inactive = (await api.get("/ai/models", modelName=name, isActive="false")).json()
    assert sorted(item["version"] for item in inactive["items"]) == ["1.0", "2.0"]
    assert all(item["isActive"] is False for item in inactive["items"])
    # Another model's active version is untouched.
    still = (await api.get("/ai/models", modelName=other["modelName"])).json()["items"]
    assert [item["isActive"] for item in still] == [True]
    by_type = (await api.get("/ai/models", modelType="pricing", modelName=name)).json()
    assert by_type["count"] == 3 and [item["version"] for item in by_type["items"]] == ["3.0", "2.0", "1.0"]
    assert v2["id"] != v3["id"]
    assert (await api.post(f"/ai/models/{ObjectId()}/activate")).status_code == 404
