"""`uuid_array` (apps/common/pgarrays.py): ids as one array literal, canonical UUIDs only, and the
statements that use it select what the ORM selects."""

import uuid

import pytest

from apps.accounts.models import User
from apps.accounts.selectors import actor_current, actors_current
from apps.common.pgarrays import canonical_uuids, is_canonical_uuid, uuid_array
from apps.messaging.models import Conversation, ConversationParticipant
from apps.messaging.selectors import conversation_ids_of, conversations_existing, participations
from tests.factories import make_conversation, make_user


def test_the_literal_holds_canonical_ids_and_refuses_anything_else() -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    assert uuid_array(ids) == "{" + ",".join(ids) + "}"
    assert uuid_array([]) == "{}"
    bad_ids: list[object] = [ids[0].upper(), ids[0].replace("-", ""), f"{ids[0]},{ids[1]}", ids[0] + "}", ""]
    for bad in [*bad_ids, uuid.UUID(ids[0])]:
        assert not is_canonical_uuid(bad)
        with pytest.raises(ValueError):
            uuid_array([ids[1], bad])  # type: ignore[list-item]  # what a buggy caller might pass


def test_canonical_uuids_drops_what_is_not_an_id() -> None:
    raw = uuid.uuid4()
    assert canonical_uuids([raw, str(raw).upper(), "nope", 7, None]) == [str(raw), str(raw)]


@pytest.mark.django_db
def test_actors_current_is_actor_current_for_each_user() -> None:
    tenant, gone = make_user(user_type="tenant"), make_user()
    staff = make_user(user_type="property_manager", roles=("maintenance_staff", "accountant"))
    User.objects.filter(pk=gone.pk).update(is_active=False)
    ids = [str(tenant.pk), str(staff.pk).upper(), str(gone.pk), str(uuid.uuid4()), "not-an-id"]
    found = actors_current(user_ids=ids)
    assert found == {str(u.pk): actor_current(user_id=u.pk) for u in (tenant, staff)}
    assert found[str(staff.pk)].roles == ("accountant", "maintenance_staff")
    assert actors_current(user_ids=["nope"]) == {}


@pytest.mark.django_db
def test_the_chat_facts_are_what_the_orm_reads() -> None:
    users = [make_user() for _ in range(4)]
    rooms = [make_conversation(participants=(users[i], users[i + 1])) for i in range(3)]
    room_ids = [str(room.pk) for room in rooms]
    nobody = str(uuid.uuid4())
    assert conversations_existing(conversation_ids=[*room_ids, nobody]) == {
        str(pk) for pk in Conversation.objects.values_list("pk", flat=True)
    }
    user_ids = [str(users[1].pk), str(users[3].pk), nobody]
    assert (
        participations(user_ids=user_ids, conversation_ids=[room_ids[0], room_ids[2]])
        == {
            (str(u), str(c))
            for u, c in ConversationParticipant.objects.filter(
                user_id__in=user_ids, conversation_id__in=[room_ids[0], room_ids[2]]
            ).values_list("user_id", "conversation_id")
        }
        == {(str(users[1].pk), room_ids[0]), (str(users[3].pk), room_ids[2])}
    )
    assert participations(user_ids=[], conversation_ids=room_ids) == set()
    lists = conversation_ids_of(user_ids=[str(users[1].pk), nobody, "NOT-AN-ID"])
    assert {k: sorted(v) for k, v in lists.items()} == {
        str(users[1].pk): sorted(room_ids[:2]),
        nobody: [],
        "NOT-AN-ID": [],
    }
