"""Memberships for the sockets: many users looked up at once, through Redis, from PostgreSQL once."""

import json

import pytest
import redis
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.messaging.directory import ParticipantDirectory
from realtime import keys
from tests.factories import make_conversation, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def test_conversations_of_many_reads_postgresql_once_then_redis_then_memory() -> None:
    tenant, manager, loner = make_user(), make_user(user_type="property_manager"), make_user()
    first = make_conversation(participants=(tenant, manager))
    second = make_conversation(participants=(tenant,))
    ids = [str(tenant.pk), str(manager.pk), str(loner.pk)]
    expected = {str(tenant.pk): {str(first.pk), str(second.pk)}, str(manager.pk): {str(first.pk)}, str(loner.pk): set()}
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    client.delete(*(keys.user_conversations(user_id) for user_id in ids))

    with CaptureQueriesContext(connection) as queries:
        found = async_to_sync(ParticipantDirectory().conversations_of_many)(ids)
    assert {user_id: set(conversations) for user_id, conversations in found.items()} == expected
    assert len(queries) == 1  # one query for all three users
    # Cached in Redis for every process, a user with no conversation too.
    assert {u: set(json.loads(client.get(keys.user_conversations(u)) or "null")) for u in ids} == expected

    client.set(keys.user_conversations(str(loner.pk)), json.dumps(["from-redis"]))
    fresh = ParticipantDirectory()
    with CaptureQueriesContext(connection) as queries:
        assert async_to_sync(fresh.conversations_of_many)(ids)[str(loner.pk)] == ["from-redis"]
        client.delete(keys.user_conversations(str(loner.pk)))
        assert async_to_sync(fresh.conversations_of)(str(loner.pk)) == ["from-redis"]  # kept in memory
    assert len(queries) == 0
    client.close()
