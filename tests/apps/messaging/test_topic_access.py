"""Topic authorization: the protocol's table, for every kind of user and topic family."""

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
import redis
from asgiref.sync import async_to_sync
from django.conf import settings

from apps.common.policy import Actor
from apps.messaging import topic_access
from apps.messaging.topic_access import CachedTopicAuthorizer, topic_allowed, topic_allowed_many
from apps.properties.models import Property, PropertyManager
from apps.properties.services import property_manager_add
from realtime import topics
from realtime.topics import Viewer
from tests.factories import make_conversation, make_lease, make_property, make_unit, make_user

pytestmark = pytest.mark.django_db


@dataclass
class World:
    users: dict[str, Any]
    names: dict[str, str]


@pytest.fixture
def world() -> World:
    landlord = make_user(user_type="landlord")
    other_landlord = make_user(user_type="landlord")
    manager = make_user(user_type="property_manager")
    other_manager = make_user(user_type="property_manager")
    tenant = make_user(user_type="tenant")
    former_tenant = make_user(user_type="tenant")
    admin = make_user(user_type="admin")
    prop = make_property(owner=landlord, managers=(manager,))
    make_property(owner=other_landlord, managers=(other_manager,))
    unit = make_unit(property=prop)
    active = make_lease(unit=unit, tenants=(tenant,), status="active")
    expired = make_lease(unit=unit, tenants=(former_tenant,), status="expired")
    chat = make_conversation(participants=(tenant, manager))
    missing = str(uuid.uuid4())
    names = {
        "chat": topics.chat_messages(str(chat.pk)),
        "own_notifications": "",  # filled per user
        "tenant_notifications": topics.notifications(str(tenant.pk)),
        "maintenance": topics.maintenance_updates(str(prop.pk)),
        "property": topics.property_changes(str(prop.pk)),
        "unit": topics.unit_changes(str(unit.pk)),
        "active_lease": topics.lease_changes(str(active.pk)),
        "expired_lease": topics.lease_changes(str(expired.pk)),
        "system": topics.SYSTEM_BROADCASTS,
        "missing_chat": topics.chat_messages(missing),
        "missing_property": topics.property_changes(missing),
        "missing_unit": topics.unit_changes(missing),
        "missing_lease": topics.lease_changes(missing),
    }
    users = {
        "tenant": tenant,
        "former_tenant": former_tenant,
        "manager": manager,
        "other_manager": other_manager,
        "landlord": landlord,
        "other_landlord": other_landlord,
        "admin": admin,
    }
    return World(users=users, names=names)


ALLOWED = {
    "tenant": {"chat", "own_notifications", "tenant_notifications", "unit", "active_lease", "system"},
    "former_tenant": {"own_notifications", "system"},
    "manager": {
        "chat",
        "own_notifications",
        "maintenance",
        "property",
        "unit",
        "active_lease",
        "expired_lease",
        "system",
    },
    "other_manager": {"own_notifications", "system"},
    "landlord": {"own_notifications", "maintenance", "property", "unit", "active_lease", "expired_lease", "system"},
    "other_landlord": {"own_notifications", "system"},
    "admin": {
        "chat",
        "own_notifications",
        "maintenance",
        "property",
        "unit",
        "active_lease",
        "expired_lease",
        "system",
    },
}


def decide(world: World, who: str, what: str, *, cached: bool) -> bool:
    user = world.users[who]
    name = topics.notifications(str(user.pk)) if what == "own_notifications" else world.names[what]
    topic = topics.parse(name)
    assert topic is not None, name
    viewer = Viewer(user_id=str(user.pk), user_type=user.user_type)
    if cached:
        return async_to_sync(CachedTopicAuthorizer().allowed)(viewer, topic)
    return topic_allowed(viewer, topic)


@pytest.mark.parametrize("who", sorted(ALLOWED))
def test_authorization_matrix(world: World, who: str) -> None:
    for what in world.names:
        expected = what in ALLOWED[who]
        assert decide(world, who, what, cached=False) is expected, f"{who} -> {what}"
        assert decide(world, who, what, cached=True) is expected, f"{who} -> {what} (cached path)"
        assert decide(world, who, what, cached=True) is expected, f"{who} -> {what} (from cache)"


def test_decisions_are_cached_per_user(world: World, clean_redis: redis.Redis) -> None:
    manager = world.users["manager"]
    assert decide(world, "manager", "property", cached=True)
    cached = clean_redis.hgetall(f"user:access:{manager.pk}")
    assert cached == {world.names["property"]: "1"}
    assert 0 < clean_redis.ttl(f"user:access:{manager.pk}") <= 3600


def test_new_membership_drops_the_cache_and_tells_every_process(
    world: World, clean_redis: redis.Redis, django_capture_on_commit_callbacks: Any
) -> None:
    outsider = world.users["other_manager"]
    assert decide(world, "other_manager", "property", cached=True) is False
    raw = redis.Redis.from_url(settings.REDIS_URL)
    pubsub = raw.pubsub()
    pubsub.subscribe(topics.CONTROL_CHANNEL)
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"

    prop = Property.objects.get(pk=world.names["property"].rsplit(":", 1)[1])
    admin = Actor(user_id=str(world.users["admin"].pk), user_type="admin")
    with django_capture_on_commit_callbacks(execute=True):
        # Through the service (issue 10: a bare ORM save of the row no longer drops anything).
        property_manager_add(caller=admin, prop=prop, user_id=outsider.pk)

    assert not clean_redis.exists(f"user:access:{outsider.pk}")
    assert decide(world, "other_manager", "property", cached=True) is True
    message = pubsub.get_message(timeout=2)
    pubsub.close()
    raw.close()
    assert message is not None
    assert msgpack.unpackb(message["data"]) == {"kind": "access.changed", "userId": str(outsider.pk)}


def test_lease_ending_drops_the_tenants_access(
    world: World, clean_redis: redis.Redis, django_capture_on_commit_callbacks: Any
) -> None:
    from apps.leasing.models import Lease
    from apps.leasing.services import lease_update

    assert decide(world, "tenant", "unit", cached=True) is True
    lease = Lease.objects.get(pk=world.names["active_lease"].rsplit(":", 1)[1])
    with django_capture_on_commit_callbacks(execute=True):
        # The leasing service compares the old and new status (issue 10: no pre_save receiver).
        lease_update(lease=lease, changes={"lease_status": "terminated"})
    assert decide(world, "tenant", "unit", cached=True) is False
    assert decide(world, "tenant", "active_lease", cached=True) is False


@pytest.mark.parametrize(
    "name",
    [
        "",
        "chat:messages:",
        "chat:messages:not-a-uuid",
        "unknown:0b2c1f04-2f4e-4e55-9b1e-4b7f6a0e5b11",
        "system:broadcasts:x",
        42,
        None,
        "notifications:" + "a" * 80,
    ],
)
def test_malformed_topic_names_do_not_parse(name: object) -> None:
    assert topics.parse(name) is None


def test_a_bare_orm_save_of_a_membership_drops_nothing(
    world: World, clean_redis: redis.Redis, django_capture_on_commit_callbacks: Any
) -> None:
    """Documented behaviour (issue 10): services are the write path; no model signal drops access.

    A membership row written with the bare ORM (a shell, a migration, a test factory) leaves the
    cached decision in place until its TTL; code that writes such rows must call
    `apps.common.access.access_changed` itself, as every service does.
    """
    outsider = world.users["other_manager"]
    assert decide(world, "other_manager", "property", cached=True) is False
    prop_id = world.names["property"].rsplit(":", 1)[1]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        PropertyManager.objects.create(property_id=prop_id, user=outsider)
    assert callbacks == []  # nothing at all hangs on the row's save
    assert clean_redis.hget(f"user:access:{outsider.pk}", world.names["property"]) == "0"
    assert decide(world, "other_manager", "property", cached=True) is False


def _request(world: World, who: str, what: str) -> tuple[str, topics.Topic]:
    user = world.users[who]
    name = topics.notifications(str(user.pk)) if what == "own_notifications" else world.names[what]
    topic = topics.parse(name)
    assert topic is not None, name
    return str(user.pk), topic


def test_decisions_made_together_match_the_matrix(world: World) -> None:
    """A burst's decisions, made in one call (one query for the users), are each one's own."""
    deactivated = make_user(user_type="admin")
    deactivated.is_active = False
    deactivated.save(update_fields=["is_active"])
    world.users["deactivated"] = deactivated
    expected = {**ALLOWED, "deactivated": {"system"}}  # broadcasts are everyone's; nothing else
    asked = [(who, what) for who in sorted(expected) for what in world.names]
    decisions = topic_allowed_many([_request(world, who, what) for who, what in asked])
    assert [(who, what, d) for (who, what), d in zip(asked, decisions, strict=True)] == [
        (who, what, what in expected[who]) for who, what in asked
    ]


def test_a_malformed_user_id_fails_only_its_own_decision(world: World) -> None:
    good = _request(world, "manager", "chat")
    bad = ("not-a-user-id", good[1])
    assert topic_allowed_many([bad, good]) == [False, True]


def test_uncached_decisions_of_one_tick_are_made_and_cached_together(
    world: World, clean_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    filled: list[list[tuple[str, str, list[str]]]] = []
    real_fill = topic_access.afill_many

    async def spy(fills: list[tuple[str, str, list[str]]], *args: Any) -> None:
        filled.append(fills)
        await real_fill(fills, *args)

    monkeypatch.setattr(topic_access, "afill_many", spy)
    authorizer = CachedTopicAuthorizer()
    asked = [(who, what) for who in ("tenant", "manager", "admin", "other_manager") for what in ("chat", "property")]

    async def burst() -> list[bool]:
        viewers = []
        for who, what in asked:
            uid, topic = _request(world, who, what)
            viewers.append(authorizer.allowed(Viewer(user_id=uid, user_type=world.users[who].user_type), topic))
        results = list(await asyncio.gather(*viewers))
        (batcher,) = authorizer._batchers.values()
        assert batcher.flushes == 1  # every miss of the tick decided in one go
        return results

    assert async_to_sync(burst)() == [what in ALLOWED[who] for who, what in asked]
    # One cache write per user, with both of its topics.
    assert [sorted(len(values) for _, _, values in fills) for fills in filled] == [[4, 4, 4, 4]]
    for who, what in asked:
        uid, topic = _request(world, who, what)
        assert clean_redis.hget(f"user:access:{uid}", topic.name) == ("1" if what in ALLOWED[who] else "0")
