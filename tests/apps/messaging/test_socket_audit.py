"""The socket audit after a broker reconnect (`audit_holdings`): sessions and topic access decided from
PostgreSQL alone, and the Redis caches an outage may have left stale dropped for what it found gone."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import Session
from apps.messaging.models import ConversationParticipant
from apps.messaging.topic_access import audit_holdings
from realtime import keys, topics
from realtime.audit import Holding
from realtime.connections import get_sync_redis
from tests.factories import make_conversation, make_user

pytestmark = pytest.mark.django_db


def _session(user, minutes: int = 60) -> str:
    session = Session.objects.create(user=user, token="x", expires_at=timezone.now() + timedelta(minutes=minutes))
    return str(session.pk)


def test_the_audit_finds_revoked_and_deactivated_sessions_shortened_expiries_and_lost_topics() -> None:
    kept, removed, deactivated = make_user(), make_user(), make_user()
    conversation = make_conversation(participants=(kept, removed, make_user(user_type="property_manager")))
    chat = topics.parse(f"chat:messages:{conversation.pk}")
    own = topics.parse(f"notifications:{removed.pk}")
    assert chat is not None and own is not None
    kept_session, removed_session, gone_session, deactivated_session = (
        _session(kept),
        _session(removed, minutes=1),
        _session(kept),
        _session(deactivated),
    )
    Session.objects.filter(pk=gone_session).delete()
    deactivated.is_active = False
    deactivated.save(update_fields=["is_active"])
    ConversationParticipant.objects.filter(conversation=conversation, user=removed).delete()
    redis = get_sync_redis()
    redis.hset(keys.user_topic_access(str(removed.pk)), chat.name, "1")  # stale: its drop was refused
    redis.hset(keys.user_session(gone_session), "tokenHash", "stale")
    redis.hset(keys.user_topic_access(str(kept.pk)), chat.name, "1")  # still true: kept

    verdict = audit_holdings(
        [
            Holding(kept_session, str(kept.pk), (chat,)),
            Holding(removed_session, str(removed.pk), (chat, own)),
            Holding(gone_session, str(kept.pk), (chat,)),
            Holding(deactivated_session, str(deactivated.pk), ()),
            Holding("not-a-session-id", str(kept.pk), ()),
        ]
    )

    assert set(verdict.sessions) == {kept_session, removed_session}
    assert verdict.sessions[removed_session] < timezone.now() + timedelta(minutes=2)
    assert verdict.denied == frozenset({(str(removed.pk), chat.name)})
    assert not redis.exists(keys.user_topic_access(str(removed.pk)))
    assert not redis.exists(keys.user_session(gone_session))
    assert redis.hget(keys.user_topic_access(str(kept.pk)), chat.name) in ("1", b"1")
