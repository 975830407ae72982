"""A session revoked while Redis is frozen (SIGSTOP): its socket is cut once Redis answers again.

A frozen Redis keeps every TCP connection open and answers nothing. Publishers give up after
their socket timeout (5 s), so a control message sent meanwhile is lost, but unlike a Redis that
dies (tests/faults/test_redis_control_outage.py) the server's pub/sub connection does not
drop. The broker pings a connection that has been silent for 2 s and gives it up when nothing
answers within 2 s more (realtime/broker.py): it reconnects as soon as Redis answers again, and
the server then audits its sockets (realtime/audit.py).

Here Redis is frozen for longer than the publishers' timeout. Meanwhile a session is deleted in
PostgreSQL together with its revocation row, so its `session.revoked` is lost for sure (as after
a relay PUBLISH that Redis ran before the server had resubscribed). After the thaw the revoked
socket must close with 4409 within a few seconds. A healthy socket must stay open and receive
its conversation's messages from before and after the freeze, each once. Real processes: one
uvicorn server and one `redis-server`, stopped with SIGSTOP and resumed with SIGCONT.
"""

import asyncio
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import pytest
from asgiref.sync import sync_to_async
from django.db import connections as db_connections
from django.db import transaction

from apps.accounts.models import Session, SessionRevocation
from tests.e2e.conftest import ServerFactory, ServerProcess
from tests.factories import make_conversation, make_user
from tests.faults.conftest import WAIT, RedisProcess, Socket, open_socket, session_token, start_own_servers, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

FROZEN_SECONDS = 6.0  # longer than the publishers' 5 s socket timeout: a PUBLISH sent meanwhile fails
NOTICE = 10.0  # bound on the broker giving the frozen connection up (2 s + 2 s by design, loaded machine)
CUT = 10.0  # bound on the revoked socket's close after the thaw (about a second here)


@dataclass
class World:
    server: ServerProcess
    conversation_id: str
    tokens: dict[str, str]  # role in the test -> bearer token


@pytest.fixture
def world(start_servers: ServerFactory, server_env: dict[str, str]) -> World:
    """A user to revoke, and a tenant and a manager in a conversation; a session each; one server."""
    users = {
        "revoked": make_user(),
        "healthy": make_user(),
        "sender": make_user(user_type="property_manager"),
    }
    conversation = make_conversation(participants=(users["healthy"], users["sender"]))
    (server,) = start_own_servers(start_servers, 1)
    return World(server, str(conversation.pk), {role: session_token(user) for role, user in users.items()})


def _revoke(session_id: str) -> None:
    """Delete the session, and the revocation row its trigger wrote, so no relay round repeats the lost PUBLISH."""
    try:
        with transaction.atomic():
            Session.objects.filter(pk=session_id).delete()
            SessionRevocation.objects.filter(session_id=session_id).delete()
    finally:
        db_connections.close_all()  # this worker thread's session must not outlive the test database


def _delivered(socket: Socket, topic: str) -> Counter[str]:
    """The `chat.message` events `socket` got on `topic`, by message id."""
    return Counter(
        frame["data"]["id"]
        for frame in socket.frames
        if frame.get("type") == "event" and frame.get("topic") == topic and frame.get("event") == "chat.message"
    )


async def _send(sender: Socket, conversation_id: str, text: str) -> str:
    reply = await sender.request(
        {"type": "chat.send", "conversationId": conversation_id, "message": text, "clientMessageId": str(uuid.uuid4())}
    )
    assert reply["ok"], reply
    return str(reply["data"]["id"])


async def test_a_session_revoked_while_redis_is_frozen_loses_its_socket_after_the_thaw(
    world: World, redis_process: RedisProcess
) -> None:
    server, tokens = world.server, world.tokens
    topic = f"chat:messages:{world.conversation_id}"
    revoked = await open_socket(server, tokens["revoked"])
    healthy = await open_socket(server, tokens["healthy"])
    sender = await open_socket(server, tokens["sender"])
    sockets = [revoked, healthy, sender]
    try:
        for socket in (healthy, sender):
            reply = await socket.request({"type": "subscribe", "topic": topic})
            assert reply["ok"], reply
        before = await _send(sender, world.conversation_id, "before the freeze")
        await wait_for(lambda: _delivered(healthy, topic)[before] == 1, WAIT, "the first message delivered")

        redis_process.signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            await sync_to_async(_revoke)(tokens["revoked"].split(".")[0])
            # The server's broker gives the silent connection up while Redis is still frozen.
            await wait_for(
                lambda: "no reply to PING" in server.logs(), NOTICE, "the broker gave the frozen connection up"
            )
            noticed = time.monotonic() - frozen_at
            # The rest of the freeze (the fault itself, not a wait for a condition).
            await asyncio.sleep(max(0.0, FROZEN_SECONDS - noticed))
            assert not any(socket.closed.done() for socket in sockets), "a socket closed while Redis was frozen"
        finally:
            redis_process.signal(signal.SIGCONT)
        thawed = time.monotonic()

        await wait_for(lambda: revoked.closed.done(), CUT, "the revoked session's socket closed after the thaw")
        assert revoked.closed.result() == 4409
        took = time.monotonic() - thawed

        after = await _send(sender, world.conversation_id, "after the thaw")
        await wait_for(lambda: _delivered(healthy, topic)[after] == 1, WAIT, "the second message delivered")
        assert not healthy.closed.done()
        assert _delivered(healthy, topic) == Counter({before: 1, after: 1})
        print(
            f"[redis freeze] broker gave the connection up {noticed:.1f} s into the freeze; access cut {took:.1f} s after the thaw"
        )
    finally:
        await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)
    logs = server.logs()
    assert "socket audit after a broker reconnect: 3 sockets, 1 closed (session gone)" in logs, logs[-5000:]
    assert "Traceback" not in logs, logs[-5000:]
