"""End-to-end, real uvicorn (production flags): a `chat.send`'s reply and the sender's own event go
out in one socket write when the event comes first, and nothing is lost, doubled or reordered.

The sender's socket is subscribed to the conversation, so each send owes it two frames (the reply
and the `chat.message` event) and the other participant one. `Connection.hold_for` holds the own
event, and whatever follows it, until the reply, then the consumer writes them with one transport
write (`LeanWebSocketsProtocol.write_frames`); the process counts such writes on /metrics.
"""

import json
import uuid
from typing import Any

import pytest

from realtime import topics
from tests.e2e.conftest import ClientFactory, ServerFactory, alogin
from tests.factories import make_conversation, make_user

pytestmark = pytest.mark.django_db(transaction=True)

SENDS = 40


@pytest.fixture
def pair(transactional_db: None) -> tuple[Any, Any, Any]:
    """A tenant and a manager sharing a conversation, committed before the server starts."""
    tenant, manager = make_user(), make_user(user_type="property_manager")
    return tenant, manager, make_conversation(participants=(tenant, manager))


async def test_each_send_gets_its_reply_and_own_event_once_in_order_batched_into_one_write(
    pair: tuple[Any, Any, Any], start_servers: ServerFactory, open_client: ClientFactory
) -> None:
    tenant, manager, conversation = pair
    topic = topics.chat_messages(str(conversation.pk))
    (server,) = start_servers(1)
    sender = await open_client(server, await alogin(server, tenant.email))
    other = await open_client(server, await alogin(server, manager.email))
    for client in (sender, other):
        await client.ok({"type": "subscribe", "topic": topic})
    writes_before = server.metric("pms_batched_writes_total")

    # Pipelined, as a phone catching up would send: every send on the wire before any reply is read.
    refs = [f"r{n}" for n in range(SENDS)]
    for n, ref in enumerate(refs):
        frame = {"type": "chat.send", "ref": ref, "conversationId": str(conversation.pk), "message": f"m{n}"}
        await sender.send({**frame, "clientMessageId": uuid.uuid4().hex})
    replies: dict[str, dict[str, Any]] = {}
    own: list[dict[str, Any]] = []
    while len(replies) < SENDS or len(own) < SENDS:
        frame = await sender.recv()
        if frame["type"] == "reply":
            assert frame["ok"] is True, frame
            assert frame["ref"] not in replies
            replies[frame["ref"]] = frame["data"]
        elif frame["type"] == "event" and frame["event"] == "chat.message":
            own.append(frame)
    theirs = [await other.next_event(lambda f: f["event"] == "chat.message") for _ in range(SENDS)]

    sent = [replies[ref] for ref in refs]
    assert [m["message"] for m in sent] == [f"m{n}" for n in range(SENDS)]
    for frames in (own, theirs):  # once each, in send order, each under the offset its reply gave
        assert [f["data"]["id"] for f in frames] == [m["id"] for m in sent]
        assert [f["offset"] for f in frames] == [m["offset"] for m in sent]
    assert json.dumps([f["data"] for f in own]) == json.dumps([f["data"] for f in theirs])
    await sender.assert_no_more_stored_events()
    # A batched write carries a reply and at least the event held for it. Under the run's own timing
    # an event can come after its reply (then both are written alone); all forty never did here.
    assert server.metric("pms_batched_writes_total") - writes_before >= 1
