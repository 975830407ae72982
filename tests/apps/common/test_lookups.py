"""`field__any=[...]` (apps/common/lookups.py) selects exactly the rows `field__in=[...]` does, as one
array parameter, on a primary key and on a foreign key, with strings or UUIDs."""

import uuid

import pytest

from apps.accounts.models import User
from apps.messaging.models import ConversationParticipant
from tests.factories import make_conversation, make_user

pytestmark = pytest.mark.django_db


def test_any_selects_what_in_selects_on_a_primary_key_and_a_foreign_key() -> None:
    users = [make_user() for _ in range(4)]
    conversations = [make_conversation(participants=(users[i], users[i + 1])) for i in range(3)]
    wanted = [users[0].pk, str(users[2].pk), uuid.uuid4()]  # a UUID, a string, an id of nobody
    assert set(User.objects.filter(pk__any=wanted)) == set(User.objects.filter(pk__in=wanted)) == {users[0], users[2]}
    members = {str(users[1].pk), str(users[3].pk)}
    rooms = [conversations[0].pk, conversations[2].pk]
    by_any = set(
        ConversationParticipant.objects.filter(user_id__any=members, conversation_id__any=rooms).values_list(
            "user_id", "conversation_id"
        )
    )
    by_in = set(
        ConversationParticipant.objects.filter(user_id__in=members, conversation_id__in=rooms).values_list(
            "user_id", "conversation_id"
        )
    )
    assert by_any == by_in == {(users[1].pk, conversations[0].pk), (users[3].pk, conversations[2].pk)}


def test_any_of_nothing_selects_nothing_and_sends_one_parameter() -> None:
    make_user()
    assert not User.objects.filter(pk__any=[]).exists()
    sql, params = User.objects.filter(pk__any=[uuid.uuid4(), uuid.uuid4()]).query.sql_with_params()
    assert "= ANY(%s::uuid[])" in sql and len(params) == 1
