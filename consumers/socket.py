"""The `/ws/` consumer: handshake, authentication, decode -> limits -> dispatch -> reply.

It is a Channels consumer without a channel layer (a per-socket layer channel costs
memory and a Redis round trip per event; fan-out goes through the realtime hub, which
writes to this socket's ASGI `send` directly). No storage code here: commands call
`realtime` and the apps' services.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer

from apps.accounts.services import Principal, asession_authenticate
from consumers.backpressure import batch_writer_probe, buffered_bytes_probe
from consumers.commands import COMMANDS, NO_REPLY, CommandContext
from consumers.commands.session import identity_of
from consumers.origin import origin_allowed
from realtime import closecodes, errors, metrics
from realtime.codecs import FrameCodec, UnencodableText, negotiate
from realtime.errors import ProtocolError
from realtime.hub import AsgiSend, Connection
from realtime.runtime import Realtime, get_realtime
from realtime.session import SocketSession

logger = logging.getLogger(__name__)
# Closes started from synchronous code (the auth timer, an unsendable reply): held until they finish.
_auth_timeout_closes: set[asyncio.Future[None]] = set()

AUTH_REQUIRED = 'Authenticate first: send {"type": "auth", "token": ...}.'
FRAME_TOO_LARGE = "Frame larger than {limit} bytes."
UNKNOWN_TYPE = "Unknown frame type {type!r}."
BAD_REF = "`ref` must be a string (at most 64 characters) or an integer (64-bit)."
BAD_TYPE = "Every frame needs a string `type`."
TOO_MANY_COMMANDS = "Too many commands; slow down."
ALREADY_AUTHENTICATED = "This socket is already authenticated."
INTERNAL = "The server could not complete the command; nothing was half-written. Retry shortly."
# A ref travels back in both codecs: MessagePack integers stop at 64 bits (signed below 0, unsigned above).
MIN_INT_REF, MAX_INT_REF = -(2**63), 2**64 - 1


def sound_ref(ref: Any) -> bool:
    """A `ref` the server can echo: a string of at most 64 characters or a 64-bit integer (None: no ref)."""
    if isinstance(ref, str):
        return len(ref) <= 64
    return isinstance(ref, int) and not isinstance(ref, bool) and MIN_INT_REF <= ref <= MAX_INT_REF


def _bearer_token(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
            return None  # another scheme: not ours; the client may still send an `auth` frame
    return None


def _new_connection_id() -> str:
    # Unique across processes, not secret: no getrandom() call (it releases the GIL) per connect.
    return f"{random.getrandbits(128):032x}"


class SocketConsumer(AsyncConsumer):
    """One client socket speaking PROTOCOL.md."""

    # Plain dicts at the ASGI boundary (the hub prebuilds its messages), not types-channels' TypedDicts.
    scope: dict[str, Any]  # type: ignore[assignment]
    base_send: AsgiSend  # type: ignore[assignment]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # type: ignore[override]
        # Like AsyncConsumer.__call__, minus the channel layer and the per-frame
        # `close_old_connections` thread hop (database work happens in services).
        self.scope = scope
        self.base_send = send
        self.codec: FrameCodec | None = None
        self.session: SocketSession | None = None
        self.closed = False
        self._auth_timer: asyncio.TimerHandle | None = None
        try:
            while True:
                message = await receive()
                await self.dispatch(message)
        except StopConsumer:
            pass
        finally:
            await self._cleanup()

    async def dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.receive":
            await self.on_frame(message.get("text"), message.get("bytes"))
        elif kind == "websocket.connect":
            await self.on_connect()
        elif kind == "websocket.disconnect":
            raise StopConsumer

    # --- handshake ---------------------------------------------------------------------

    async def on_connect(self) -> None:
        self.realtime: Realtime = await get_realtime()
        settings = self.realtime.settings
        if not origin_allowed(self.scope):
            metrics.incr("sockets.refused_origin")
            await self.base_send({"type": "websocket.close"})
            return
        codec = negotiate(list(self.scope.get("subprotocols") or []))
        if codec is None:
            metrics.incr("sockets.refused_subprotocol")
            await self.base_send({"type": "websocket.close"})
            return
        self.codec = codec
        accept: dict[str, Any] = {"type": "websocket.accept"}
        if self.scope.get("subprotocols"):
            accept["subprotocol"] = codec.name
        token = _bearer_token(self.scope)
        principal = None
        if token is not None:
            try:
                principal = await asession_authenticate(token)
            except ProtocolError:
                await self.base_send(accept)
                await self.close(closecodes.UNAUTHORIZED)
                return
        if principal is not None:
            # Registered before the accept: once the client sees the socket open, it is online.
            await self._open(principal)
        await self.base_send(accept)
        if principal is None:
            loop = asyncio.get_running_loop()
            self._auth_timer = loop.call_later(settings.auth_timeout_seconds, self._auth_timed_out)

    def _auth_timed_out(self) -> None:
        if self.session is None and not self.closed:
            task = asyncio.ensure_future(self.close(closecodes.UNAUTHORIZED))
            _auth_timeout_closes.add(task)  # held until done: the loop keeps only a weak reference
            task.add_done_callback(_auth_timeout_closes.discard)

    async def _open(self, principal: Principal) -> None:
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        assert self.codec is not None
        settings = self.realtime.settings
        conn = Connection(
            _new_connection_id(),
            self.codec.name,
            self.base_send,
            self.close,
            max_backlog_events=settings.max_backlog_events,
            max_backlog_bytes=settings.max_backlog_bytes,
            buffered=buffered_bytes_probe(self.base_send),
            write_batch=batch_writer_probe(self.base_send),
        )
        self.session = SocketSession(conn=conn, identity=identity_of(principal), settings=settings, closer=self.close)
        await self.realtime.add(self.session)

    async def close(self, code: int) -> None:
        """Close the socket once with `code`."""
        if self.closed:
            return
        self.closed = True
        if self.session is not None:
            self.session.conn.closing = True
        try:
            await self.base_send({"type": "websocket.close", "code": code})
        except Exception:
            logger.debug("close %d on a socket already gone", code)

    async def _cleanup(self) -> None:
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        if self.session is not None:
            session, self.session = self.session, None
            await self.realtime.remove(session)

    # --- frames ------------------------------------------------------------------------

    async def on_frame(self, text: str | None, data: bytes | None) -> None:
        if self.closed or self.codec is None:
            return
        payload: str | bytes = text if text is not None else (data or b"")
        size = len(payload) if isinstance(payload, bytes) or payload.isascii() else len(payload.encode())
        settings = self.realtime.settings
        if size > settings.hard_max_frame_bytes:
            await self.close(closecodes.MESSAGE_TOO_BIG)
            return
        if size > settings.max_frame_bytes:
            if self.session is None:
                await self.close(closecodes.UNAUTHORIZED)
                return
            if self.session.oversize.strike():
                await self.close(closecodes.MESSAGE_TOO_BIG)
                return
            self._send_error(
                None, ProtocolError(errors.TOO_LARGE, FRAME_TOO_LARGE.format(limit=settings.max_frame_bytes))
            )
            return
        try:
            frame = self.codec.decode(payload)
        except ProtocolError as exc:
            if self.session is None:
                await self.close(closecodes.UNAUTHORIZED)
                return
            # A frame that was never read has no `ref` to answer; one read but holding text that is
            # not Unicode is answered on its `ref` unless the `ref` is that text.
            ref = exc.frame.get("ref") if isinstance(exc, UnencodableText) and exc.field != "ref" else None
            self._send_error(ref if sound_ref(ref) else None, exc)
            return
        kind = frame.get("type")
        ref = frame.get("ref")
        if self.session is None:
            await self._before_auth(kind, frame)
            return
        if ref is not None and not sound_ref(ref):
            self._send_error(None, ProtocolError(errors.BAD_REQUEST, BAD_REF))
            return
        if not self.session.budget.take():
            if self.session.budget.refused_for() >= settings.rate_limited_close_after_seconds:
                await self.close(closecodes.RATE_LIMITED)
                return
            retry = max(1, round(self.session.budget.retry_after() + 0.5))
            self._send_error(ref, ProtocolError(errors.RATE_LIMITED, TOO_MANY_COMMANDS, retryAfter=retry))
            return
        await self._run_command(kind, ref, frame)

    async def _before_auth(self, kind: Any, frame: dict[str, Any]) -> None:
        if kind != "auth":
            await self.close(closecodes.UNAUTHORIZED)
            return
        ref = frame.get("ref")
        token = frame.get("token")
        try:
            if not isinstance(token, str):
                raise ProtocolError(errors.UNAUTHORIZED, "A string `token` is required.")
            principal = await asession_authenticate(token)
        except ProtocolError as exc:
            await self._send_before_open(ref, exc)
            await self.close(closecodes.UNAUTHORIZED)
            return
        await self._open(principal)
        if ref is not None:
            self._reply(ref, {"userId": principal.user_id, "userType": principal.user_type})

    async def _run_command(self, kind: Any, ref: Any, frame: dict[str, Any]) -> None:
        assert self.session is not None
        if not isinstance(kind, str):
            self._send_error(ref, ProtocolError(errors.BAD_REQUEST, BAD_TYPE))
            return
        if kind == "auth":
            self._send_error(ref, ProtocolError(errors.BAD_REQUEST, ALREADY_AUTHENTICATED))
            return
        self.session.touch()
        if self.realtime.presence is not None:
            await self.realtime.presence.active(self.session)
        if kind == "ping":
            pong: dict[str, Any] = {"type": "pong"}
            if ref is not None:
                pong["ref"] = ref
            self._write(pong)
            return
        handler = COMMANDS.get(kind)
        if handler is None:
            self._send_error(ref, ProtocolError(errors.BAD_REQUEST, UNKNOWN_TYPE.format(type=kind[:64])))
            return
        session = self.session
        context = CommandContext(realtime=self.realtime, session=session, ref=ref, reply=self._reply)
        metrics.incr(f"commands.{kind}")
        try:
            try:
                data = await handler(context, frame)
            except ProtocolError as exc:
                self._send_error(ref, exc)
                return
            except Exception:
                logger.exception("command %s failed for user %s", kind, session.identity.user_id)
                metrics.incr("commands.failed")
                self._send_error(ref, ProtocolError(errors.UNAVAILABLE, INTERNAL))
                return
            if data is not NO_REPLY and ref is not None:
                self._reply(ref, data)
        finally:
            # What the handler's `hold_for` held goes out now, with the reply, in one write.
            session.conn.release()

    # --- writing -----------------------------------------------------------------------

    def _write(self, frame: dict[str, Any]) -> None:
        """Write in order with the hub's events (the socket is open).

        A frame the codec cannot encode is a server bug, not the client's: it is logged and the
        socket closed 1011 (the client reconnects and recovers), never left open and mute.
        """
        assert self.codec is not None and self.session is not None
        try:
            message = self.codec.asgi_message(frame)
        except Exception:
            logger.exception(
                "%s frame for user %s cannot be encoded; closing %d",
                frame.get("type"),
                self.session.identity.user_id,
                closecodes.INTERNAL_ERROR,
            )
            metrics.incr("sockets.unsendable_reply")
            task = asyncio.ensure_future(self.close(closecodes.INTERNAL_ERROR))
            _auth_timeout_closes.add(task)  # held until done: the loop keeps only a weak reference
            task.add_done_callback(_auth_timeout_closes.discard)
            return
        self.session.conn.send_direct(message)

    def _reply(self, ref: Any, data: Any) -> None:
        if ref is not None:
            self._write({"type": "reply", "ref": ref, "ok": True, "data": data if data is not None else {}})

    def _send_error(self, ref: Any, exc: ProtocolError) -> None:
        if ref is not None:
            self._write({"type": "reply", "ref": ref, "ok": False, "error": exc.as_dict()})
        else:
            self._write({"type": "error", "error": exc.as_dict()})

    async def _send_before_open(self, ref: Any, exc: ProtocolError) -> None:
        """An auth failure, written before the socket joins the hub."""
        assert self.codec is not None
        if isinstance(ref, (str, int)) and not isinstance(ref, bool):
            frame: dict[str, Any] = {"type": "reply", "ref": ref, "ok": False, "error": exc.as_dict()}
        else:
            frame = {"type": "error", "error": exc.as_dict()}
        await self.base_send(self.codec.asgi_message(frame))
