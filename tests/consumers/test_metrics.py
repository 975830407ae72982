"""`/metrics` on the sockets' event loop: gauges and counters move with real sockets, subscriptions and events."""

import pytest
from django.test import AsyncClient

from realtime import topics
from realtime.connections import get_redis
from realtime.history import RedisHistory
from tests.consumers.conftest import token_for
from tests.pms.test_metrics import EVERY_METRIC, Samples, check_histogram, parse_exposition, value_of

pytestmark = pytest.mark.django_db(transaction=True)


async def scrape() -> Samples:
    """Scrape through the ASGI handler on this loop: the same realtime core the sockets use (as under uvicorn)."""
    response = await AsyncClient().get("/metrics")
    assert response.status_code == 200
    types, samples = parse_exposition(response.content.decode())
    assert set(EVERY_METRIC) <= set(types)
    check_histogram(samples, "pms_delivery_latency_seconds")
    return samples


async def subscribe(socket, topic: str) -> None:
    await socket.send_json_to({"type": "subscribe", "ref": topic, "topic": topic})
    reply = await socket.receive_json_from(timeout=2)
    assert reply["ok"] is True, reply


async def test_metrics_count_sockets_subscriptions_events_and_delivery_latency(connect, new_user) -> None:
    # Topics of fresh users only: pub/sub spans every test run on this Redis, so shared topics could see strangers.
    alice, bob = await new_user(), await new_user()
    alice_topic, bob_topic = topics.notifications(str(alice.pk)), topics.notifications(str(bob.pk))
    start = await scrape()
    phone = await connect(await token_for(alice))
    laptop = await connect(await token_for(alice))
    other = await connect(await token_for(bob))
    await subscribe(phone, alice_topic)
    await subscribe(laptop, alice_topic)
    await subscribe(other, bob_topic)

    subscribed = await scrape()
    assert value_of(subscribed, "pms_open_sockets") == 3
    assert value_of(subscribed, "pms_subscriptions") == 3
    assert value_of(subscribed, "pms_local_topics") == 2
    assert value_of(subscribed, "pms_sockets_opened_total") - value_of(start, "pms_sockets_opened_total") == 3
    commands = value_of(subscribed, "pms_commands_total", type="subscribe")
    assert commands - value_of(start, "pms_commands_total", type="subscribe") == 3

    history = RedisHistory(get_redis())
    sent = await history.publish(alice_topic, "notification", {"title": "both your devices"})
    assert await phone.receive_json_from(timeout=2) == sent
    assert await laptop.receive_json_from(timeout=2) == sent
    sent = await history.publish(bob_topic, "notification", {"title": "bob's"})
    assert await other.receive_json_from(timeout=2) == sent

    published = await scrape()

    def moved(name: str, **labels: str) -> float:
        return value_of(published, name, **labels) - value_of(subscribed, name, **labels)

    assert moved("pms_events_in_total", family="notifications") == 2
    assert moved("pms_events_out_total", family="notifications") == 3
    assert moved("pms_events_in_total", family="chat:messages") == 0
    assert moved("pms_delivery_latency_seconds_count") == 2
    assert moved("pms_delivery_latency_seconds_bucket", le="10.0") == 2

    await laptop.disconnect(timeout=2)
    await other.disconnect(timeout=2)
    closed = await scrape()
    assert value_of(closed, "pms_open_sockets") == 1
    assert value_of(closed, "pms_subscriptions") == 1
    assert value_of(closed, "pms_local_topics") == 1
    assert value_of(closed, "pms_sockets_closed_total") - value_of(published, "pms_sockets_closed_total") == 2
