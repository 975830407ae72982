"""Access-cutting control messages lost to a Redis outage: the sockets are cut all the same (issue #15).

`session.revoked`, `session.rotated`, `access.changed` and `permissions.changed` are PUBLISHes
on `pms:control`; Redis keeps no copy, so one published while a process's pub/sub connection
is down, or back but not yet resubscribed, never reaches that process. Here the changes are
made in PostgreSQL while the test's own Redis is dead, and their messages are lost for sure:
- a session deleted, with the revocation row its trigger wrote deleted too (what the relay
  leaves after a PUBLISH that Redis took while the server was not subscribed yet);
- a session's expiry cut short (a refresh whose `session.rotated` could not be sent);
- a participant removed from a conversation (its `access.changed` went to no server).
Redis then comes back with its data (append-only file: the cached session and the cached
"allowed" decision the outage kept it from dropping are still there). The server's socket
audit after its broker reconnects must close the revoked socket with 4409, the shortened one
with 4401, tell the removed participant `unsubscribed` and refuse them the topic again, refuse a
new socket with the revoked token, and leave a healthy socket alone. Real processes: one uvicorn
server and one `redis-server`, killed with SIGKILL and restarted.
"""

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections as db_connections
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Session, SessionRevocation
from apps.messaging.models import ConversationParticipant
from tests.e2e.conftest import ServerFactory, ServerProcess
from tests.factories import make_conversation, make_user
from tests.faults.conftest import RedisProcess, open_socket, session_token, start_own_servers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

DOWN_SECONDS = 2.0  # several broker reconnects fail first (0.5 s backoff cap), as in a longer outage
CUT = 30.0  # bound on each outcome after Redis is back (the audit runs within a second here)


async def _until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + CUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {CUT:.0f} s of Redis returning: {what}")
        await asyncio.sleep(0.05)


@dataclass
class World:
    server: ServerProcess
    conversation_id: str
    users: dict[str, str]  # role in the test -> user id
    tokens: dict[str, str]  # role in the test -> bearer token


@pytest.fixture
def world(start_servers: ServerFactory, server_env: dict[str, str]) -> World:
    """Four users with a session each (committed), two of them in a conversation; one server."""
    users = {role: make_user() for role in ("revoked", "shortened", "removed", "healthy")}
    conversation = make_conversation(
        participants=(users["removed"], users["healthy"], make_user(user_type="property_manager"))
    )
    (server,) = start_own_servers(start_servers, 1)
    return World(
        server,
        str(conversation.pk),
        {role: str(user.pk) for role, user in users.items()},
        {role: session_token(user) for role, user in users.items()},
    )


def _change_during_the_outage(world: World) -> None:
    """The three changes, made in PostgreSQL while Redis is dead; their control messages lost."""
    try:
        _change(world)
    finally:
        db_connections.close_all()  # this worker thread's session must not outlive the test database


def _change(world: World) -> None:
    revoked_session = world.tokens["revoked"].split(".")[0]
    with transaction.atomic():
        Session.objects.filter(pk=revoked_session).delete()
        # The revocation's PUBLISH is lost to this server: as if the relay had sent it while
        # the server's pub/sub connection was not yet resubscribed.
        SessionRevocation.objects.filter(session_id=revoked_session).delete()
    Session.objects.filter(pk=world.tokens["shortened"].split(".")[0]).update(
        expires_at=timezone.now() + timedelta(seconds=1)
    )
    # A bare delete publishes nothing (the services' access.changed would go to no server here).
    ConversationParticipant.objects.filter(
        conversation_id=world.conversation_id, user_id=world.users["removed"]
    ).delete()


async def test_control_messages_lost_in_a_redis_outage_still_cut_access_after_it(
    world: World, redis_process: RedisProcess
) -> None:
    server, tokens = world.server, world.tokens
    topic = f"chat:messages:{world.conversation_id}"
    revoked = await open_socket(server, tokens["revoked"])
    shortened = await open_socket(server, tokens["shortened"])
    removed = await open_socket(server, tokens["removed"])
    healthy = await open_socket(server, tokens["healthy"])
    sockets = [revoked, shortened, removed, healthy]
    try:
        for socket in (removed, healthy):
            reply = await socket.request({"type": "subscribe", "topic": topic})
            assert reply["ok"], reply
        # The removed participant's "allowed" decision is now cached in Redis (user:access).
        assert redis_process.client().hget(f"user:access:{world.users['removed']}", topic) == "1"

        redis_process.kill()
        await sync_to_async(_change_during_the_outage)(world)
        await asyncio.sleep(DOWN_SECONDS)  # the outage itself, not a wait for a condition
        assert not any(socket.closed.done() for socket in sockets), "a socket closed during the outage"
        back = time.monotonic()
        redis_process.start(keep_data=True)

        await _until(lambda: revoked.closed.done(), "the revoked session's socket closed")
        assert revoked.closed.result() == 4409
        await _until(lambda: shortened.closed.done(), "the shortened session's socket closed")
        assert shortened.closed.result() == 4401
        await _until(
            lambda: {"type": "unsubscribed", "topic": topic, "reason": "forbidden"} in removed.frames,
            "the removed participant told `unsubscribed`",
        )
        took = time.monotonic() - back
        again = await removed.request({"type": "subscribe", "topic": topic})
        assert again["ok"] is False and again["error"]["code"] == "forbidden", again

        # A new socket with the revoked token is refused (its cached session was dropped).
        late = await open_socket(server, tokens["revoked"])
        sockets.append(late)
        await _until(lambda: late.closed.done(), "the revoked token's new socket closed")
        assert late.closed.result() == 4401

        assert not healthy.closed.done()
        still = await healthy.request({"type": "subscribe", "topic": f"notifications:{world.users['healthy']}"})
        assert still["ok"], still
        assert not [f for f in healthy.frames if f.get("type") == "unsubscribed"]
        print(f"[control outage] access cut {took:.1f} s after Redis returned")
    finally:
        await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)
    logs = server.logs()
    assert "socket audit after a broker reconnect: 4 sockets, 1 closed (session gone), 1 sessions shortened" in logs
    assert "Traceback" not in logs, logs[-5000:]
