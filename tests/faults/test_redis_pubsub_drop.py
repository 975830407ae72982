"""A server's pub/sub connection drops while Redis stays up: the gap is repaired from history,
or, where history was trimmed past it, the sockets are told (1012, then `recovered: false`).

Deterministic: one pipeline kills every pub/sub connection (CLIENT KILL TYPE pubsub) and
then stores and publishes events with the history's own script. Redis runs the pipeline's
commands back to back, so they all fall in the window before the server reconnects (its
first retry is 0.1 s later): none reaches it live.
"""

import uuid

import pytest
import redis

from realtime import keys
from realtime.codecs import pack
from realtime.events import make_event
from realtime.history import script_text
from tests.e2e.conftest import ServerFactory
from tests.factories import make_conversation, make_user
from tests.faults.conftest import Participant, RedisProcess, session_token, start_own_servers, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

_PUBLISH = script_text("history_publish")
MAX_EVENTS = 5  # PMS_HISTORY_MAX_EVENTS: MAXLEN ~ trims whole stream nodes (100 entries) past it


def _kill_pubsub_then_publish(redis_process: RedisProcess, topic: str, count: int) -> list[str]:
    """In one pipeline: drop every pub/sub connection, then store and PUBLISH `count` events."""
    client = redis.Redis(port=redis_process.port)
    try:
        sha = client.script_load(_PUBLISH)
        ids = [uuid.uuid4().hex for _ in range(count)]
        with client.pipeline(transaction=False) as pipe:
            pipe.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            for message_id in ids:
                frame = make_event(topic, "chat.message", {"id": message_id})
                pipe.evalsha(
                    sha,
                    2,
                    keys.topic_epoch(topic),
                    keys.topic_history(topic),
                    topic,
                    pack(frame),
                    MAX_EVENTS,
                    86_400_000,
                    f"{uuid.uuid4().int % 2**64:016x}",
                )
            replies = pipe.execute()
        assert replies[0] >= 1, "no pub/sub connection was there to kill"
        return ids
    finally:
        client.close()


@pytest.fixture
def watcher(start_servers: ServerFactory, server_env: dict[str, str], redis_process: RedisProcess) -> Participant:
    server_env["PMS_HISTORY_MAX_EVENTS"] = str(MAX_EVENTS)
    tenant, manager = make_user(), make_user(user_type="property_manager")
    conversation = make_conversation(participants=(tenant, manager))
    (server,) = start_own_servers(start_servers, 1)
    return Participant(server, session_token(tenant), str(tenant.pk), str(conversation.pk))


async def test_events_published_while_the_server_was_unsubscribed_arrive_in_order_once(
    watcher: Participant, redis_process: RedisProcess
) -> None:
    await watcher.open()
    try:
        sent = _kill_pubsub_then_publish(redis_process, watcher.topic, 3)
        await wait_for(lambda: set(sent) <= set(watcher.delivered), 20, "the missed events, from history")
        # A later live event comes after them, and nothing came twice.
        (after,) = _kill_pubsub_then_publish(redis_process, watcher.topic, 1)
        await wait_for(lambda: after in watcher.delivered, 20, "the next event")
    finally:
        await watcher.close()
    assert list(watcher.delivered) == [*sent, after]  # in publish order
    assert set(watcher.delivered.values()) == {1}
    assert watcher.close_codes == []


async def test_a_gap_the_trimmed_history_cannot_fill_closes_1012_and_since_answers_false(
    watcher: Participant, redis_process: RedisProcess
) -> None:
    await watcher.open()
    try:
        sent = _kill_pubsub_then_publish(redis_process, watcher.topic, 400)  # far past MAX_EVENTS
        await wait_for(lambda: watcher.recovered == [False], 20, "1012, then `since` answering false")
    finally:
        await watcher.close()
    assert watcher.close_codes == [1012]
    # None of the 400 reached the socket after the gap; the reload (`chat.history`) is the
    # app's way back (these events were published past the chat store, so it has none).
    assert not set(sent) & set(watcher.delivered)
