"""Conversations, chat history and notifications over HTTP: the socket's services, permission matrix, unread counts."""

import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from pymongo import AsyncMongoClient

from apps.messaging.conversations_api import NOT_A_PARTICIPANT
from apps.messaging.models import ConversationParticipant
from apps.messaging.services import MANAGERS_ONLY, UNREACHABLE
from realtime.runtime import get_realtime
from tests.apps.api_world import World, build_world
from tests.apps.messaging.http_chat import AsyncApi
from tests.consumers.conftest import realtime_core  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("realtime_core")]


@pytest.fixture
async def world() -> World:
    return await sync_to_async(build_world)()


@pytest.fixture
async def apis(world: World) -> dict[str, AsyncApi]:
    names = ("tenant", "manager", "landlord", "admin", "other_manager", "other_tenant")
    return {name: await AsyncApi.login(getattr(world, name)) for name in names}


async def start(api: AsyncApi, *users: Any, **extra: Any) -> dict[str, Any]:
    response = await api.post("/conversations", {"participants": [str(u.pk) for u in users], **extra})
    assert response.status_code == 201, response.content
    return response.json()


async def send(api: AsyncApi, cid: str, text: str, client_id: str | None = None) -> Any:
    return await api.post(
        f"/conversations/{cid}/messages", {"message": text, "clientMessageId": client_id or uuid.uuid4().hex}
    )


async def stored(cid: str) -> int:
    client: AsyncMongoClient[Any] = AsyncMongoClient(settings.MONGO_URL)
    try:
        return await client[settings.MONGO_DATABASE]["chat_messages"].count_documents({"conversationId": cid})
    finally:
        await client.close()


async def test_tenant_starts_conversations_only_with_staff_of_a_property_they_lease(
    world: World, apis: dict[str, AsyncApi]
) -> None:
    body = await start(apis["tenant"], world.manager, world.landlord, subject="Leaky sink")
    assert {p["userId"] for p in body["participants"]} == {
        str(world.tenant.pk),
        str(world.manager.pk),
        str(world.landlord.pk),
    }
    assert body["createdBy"] == str(world.tenant.pk) and body["unreadCount"] == 0 and body["subject"] == "Leaky sink"
    for other in (world.other_manager, world.other_tenant, world.admin):
        refused = await apis["tenant"].post("/conversations", {"participants": [str(other.pk)]})
        assert refused.status_code == 422 and refused.json()["error"]["message"] == UNREACHABLE
    wrong_property = await apis["tenant"].post(
        "/conversations", {"participants": [str(world.manager.pk)], "propertyId": str(world.other_prop.pk)}
    )
    assert wrong_property.status_code == 422
    assert (await apis["tenant"].post("/conversations", {"participants": [str(world.tenant.pk)]})).status_code == 422


async def test_staff_reach_their_tenants_and_admins_reach_anyone(world: World, apis: dict[str, AsyncApi]) -> None:
    await start(apis["manager"], world.tenant, propertyId=str(world.prop.pk))
    refused = await apis["manager"].post("/conversations", {"participants": [str(world.other_tenant.pk)]})
    assert refused.status_code == 422
    await start(apis["admin"], world.other_tenant, world.tenant)


# Writes (send, read) answer 403 for every non-participant, as the socket's `chat.send` and `chat.read`
# do (one participant check, apps.messaging.services.aconversation_require_participant); reading
# a conversation one may not see stays 404. (Writes of outsiders answered 404 before issue 10.)
@pytest.mark.parametrize(
    ("who", "read", "write"),
    [
        ("tenant", 200, 201),
        ("manager", 200, 201),
        ("admin", 200, 403),
        ("landlord", 404, 403),
        ("other_manager", 404, 403),
        ("other_tenant", 404, 403),
    ],
)
async def test_conversation_and_nested_resources_permission_matrix(
    world: World, apis: dict[str, AsyncApi], who: str, read: int, write: int
) -> None:
    cid = (await start(apis["tenant"], world.manager))["id"]
    first = (await send(apis["manager"], cid, "Hello")).json()
    api = apis[who]
    assert (await api.get(f"/conversations/{cid}")).status_code == read
    assert (await api.get(f"/conversations/{cid}/participants")).status_code == read
    assert (await api.get(f"/conversations/{cid}/messages")).status_code == read
    sent = await send(api, cid, "me too")
    assert sent.status_code == write
    if write == 403:
        assert sent.json()["error"]["message"] == NOT_A_PARTICIPANT
    read_mark = await api.post(f"/conversations/{cid}/read", {"messageId": first["id"]})
    assert read_mark.status_code == (200 if write == 201 else write)
    listed = (await api.get("/conversations")).json()
    assert (cid in [c["id"] for c in listed["items"]]) is (write == 201)


async def test_participants_changed_by_creator_property_staff_or_admin(world: World, apis: dict[str, AsyncApi]) -> None:
    cid = (await start(apis["tenant"], world.manager))["id"]
    path = f"/conversations/{cid}/participants"
    not_allowed = await apis["manager"].post(path, {"userId": str(world.landlord.pk)})
    assert not_allowed.status_code == 403 and not_allowed.json()["error"]["message"] == MANAGERS_ONLY
    added = await apis["tenant"].post(path, {"userId": str(world.landlord.pk)})
    assert added.status_code == 201 and str(world.landlord.pk) in {p["userId"] for p in added.json()}
    assert (await apis["tenant"].post(path, {"userId": str(world.other_manager.pk)})).status_code == 422
    assert (await apis["other_manager"].post(path, {"userId": str(world.other_manager.pk)})).status_code == 404
    assert (await apis["admin"].post(path, {"userId": str(world.other_tenant.pk)})).status_code == 201
    assert (await apis["manager"].delete(f"{path}/{world.tenant.pk}")).status_code == 403
    assert (await apis["manager"].delete(f"{path}/{world.manager.pk}")).status_code == 204  # leaving
    assert (await apis["admin"].delete(f"{path}/{world.other_tenant.pk}")).status_code == 204
    assert (await apis["admin"].delete(f"{path}/{world.other_tenant.pk}")).status_code == 404
    remaining = {p["userId"] for p in (await apis["tenant"].get(path)).json()}
    assert remaining == {str(world.tenant.pk), str(world.landlord.pk)}
    # Staff of the conversation's property manage its participants too.
    with_property = (await start(apis["tenant"], world.manager, propertyId=str(world.prop.pk)))["id"]
    staff_add = await apis["manager"].post(
        f"/conversations/{with_property}/participants", {"userId": str(world.landlord.pk)}
    )
    assert staff_add.status_code == 201


async def test_send_over_http_is_idempotent_on_client_message_id(world: World, apis: dict[str, AsyncApi]) -> None:
    cid = (await start(apis["tenant"], world.manager))["id"]
    first = await send(apis["tenant"], cid, "The sink leaks", "c-1")
    assert first.status_code == 201, first.content
    message = first.json()
    assert message["senderId"] == str(world.tenant.pk) and message["recipientId"] == str(world.manager.pk)
    assert message["offset"] and len(message["id"]) == 24
    again = await send(apis["tenant"], cid, "The sink leaks", "c-1")
    assert again.status_code == 201 and again.json()["id"] == message["id"]
    assert await stored(cid) == 1
    history = (await apis["manager"].get(f"/conversations/{cid}/messages")).json()
    assert [m["id"] for m in history["messages"]] == [message["id"]] and history["hasMore"] is False
    for bad in ({"message": "", "clientMessageId": "x"}, {"message": "hi"}, {"message": "hi", "clientMessageId": ""}):
        response = await apis["tenant"].post(f"/conversations/{cid}/messages", bad)
        assert response.status_code == 422, bad


async def test_history_pages_with_before(world: World, apis: dict[str, AsyncApi]) -> None:
    cid = (await start(apis["tenant"], world.manager))["id"]
    ids = [(await send(apis["tenant"], cid, f"m{i}")).json()["id"] for i in range(5)]
    newest = (await apis["tenant"].get(f"/conversations/{cid}/messages", limit=2)).json()
    assert [m["id"] for m in newest["messages"]] == ids[3:] and newest["hasMore"] is True
    older = (await apis["tenant"].get(f"/conversations/{cid}/messages", limit=2, before=ids[3])).json()
    assert [m["id"] for m in older["messages"]] == ids[1:3]
    assert (await apis["tenant"].get(f"/conversations/{cid}/messages", before="nope")).status_code == 422


async def test_each_conversation_carries_its_newest_message_for_inboxes(
    world: World, apis: dict[str, AsyncApi]
) -> None:
    cid = (await start(apis["tenant"], world.manager))["id"]
    quiet = (await start(apis["tenant"], world.landlord))["id"]
    await send(apis["tenant"], cid, "The sink leaks")
    newest = (await send(apis["manager"], cid, "A plumber comes at 9")).json()

    def last(body: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
        return {c["id"]: c["lastMessage"] for c in body["items"]}

    expected = {
        "id": newest["id"],
        "senderId": str(world.manager.pk),
        "message": "A plumber comes at 9",
        "attachmentCount": 0,
        "createdAt": newest["createdAt"],
        "isDeleted": False,
    }
    assert last((await apis["tenant"].get("/conversations")).json()) == {cid: expected, quiet: None}
    assert last((await apis["manager"].get("/conversations")).json()) == {cid: expected}
    assert (await apis["tenant"].get(f"/conversations/{cid}")).json()["lastMessage"] == expected
    # A deleted newest message is shown as its tombstone, never its text.
    chat = (await get_realtime()).chat
    assert chat is not None
    await chat.delete(message_id=newest["id"], deleter_id=str(world.manager.pk))
    tombstone = (await apis["tenant"].get(f"/conversations/{cid}")).json()["lastMessage"]
    assert tombstone == {**expected, "message": None, "isDeleted": True}


async def test_unread_counts_follow_read_positions(world: World, apis: dict[str, AsyncApi]) -> None:
    cid = (await start(apis["tenant"], world.manager))["id"]
    other = (await start(apis["tenant"], world.landlord))["id"]
    sent = [(await send(apis["manager"], cid, f"update {i}")).json()["id"] for i in range(3)]
    await send(apis["tenant"], cid, "thanks")  # my own messages never count
    await send(apis["landlord"], other, "hi")

    async def unread(api: AsyncApi) -> dict[str, int]:
        return {c["id"]: c["unreadCount"] for c in (await api.get("/conversations")).json()["items"]}

    assert await unread(apis["tenant"]) == {cid: 3, other: 1}
    assert (await unread(apis["manager"]))[cid] == 1
    marked = await apis["tenant"].post(f"/conversations/{cid}/read", {"messageId": sent[1]})
    assert marked.status_code == 200 and marked.json()["unreadCount"] == 1
    assert marked.json()["lastReadMessageId"] == sent[1]
    assert await unread(apis["tenant"]) == {cid: 1, other: 1}
    assert (await apis["tenant"].get(f"/conversations/{cid}")).json()["unreadCount"] == 1
    row = await sync_to_async(ConversationParticipant.objects.get)(conversation_id=cid, user_id=world.tenant.pk)
    assert row.last_read_message_id == sent[1] and row.last_read_at is not None
    assert (await apis["tenant"].post(f"/conversations/{cid}/read", {"messageId": "0" * 24})).status_code == 404


async def test_conversation_list_pages(world: World, apis: dict[str, AsyncApi]) -> None:
    created = [(await start(apis["tenant"], world.manager))["id"] for _ in range(3)]
    first = (await apis["tenant"].get("/conversations", limit=2)).json()
    assert first["count"] == 3 and len(first["items"]) == 2 and first["nextOffset"] == 2
    second = (await apis["tenant"].get("/conversations", limit=2, offset=2)).json()
    assert second["nextOffset"] is None
    assert {c["id"] for c in first["items"] + second["items"]} == set(created)
    assert (await apis["other_tenant"].get("/conversations")).json()["count"] == 0


async def test_notifications_list_read_and_count_through_the_socket_service(
    world: World, apis: dict[str, AsyncApi]
) -> None:
    service = (await get_realtime()).notifications
    assert service is not None
    made = [
        await service.notify(str(world.tenant.pk), type="maintenance", title=f"T{i}", message="m") for i in range(3)
    ]
    await service.notify(str(world.other_tenant.pk), type="payment", title="Other", message="m")
    tenant = apis["tenant"]
    listed = (await tenant.get("/notifications")).json()
    assert [n["id"] for n in listed["notifications"]] == [n["id"] for n in reversed(made)]
    assert (await tenant.get("/notifications/unread-count")).json() == {"unread": 3}
    older = (await tenant.get("/notifications", limit=1, before=made[2]["id"])).json()
    assert [n["id"] for n in older["notifications"]] == [made[1]["id"]] and older["hasMore"] is True
    assert (await tenant.post("/notifications/read", {"ids": [made[0]["id"]]})).json() == {"unread": 2}
    unread = (await tenant.get("/notifications", unreadOnly="true")).json()
    assert {n["id"] for n in unread["notifications"]} == {made[1]["id"], made[2]["id"]}
    # Someone else's id changes nothing.
    assert (await apis["other_tenant"].post("/notifications/read", {"ids": [made[1]["id"]]})).json() == {"unread": 1}
    assert (await tenant.post("/notifications/read", {"all": True})).json() == {"unread": 0}
    for bad in ({}, {"ids": [made[0]["id"]], "all": True}, {"ids": ["nope"]}):
        assert (await tenant.post("/notifications/read", bad)).status_code == 422, bad
    assert (await apis["other_tenant"].get("/notifications")).json()["notifications"][0]["title"] == "Other"
