"""The "bench protocol": one adapter per server kind, so one client script drives all of them.

Every measured message carries a marker string `<kind>|<step>|<a>|<b>|<sent epoch s>`:
fan-out `F|step|seq|0|ts`, chat `C|step|sender|seq|ts`, ping `P|0|n|0|ts`. The marker
travels in whatever field the server kind uses:

- ``ours`` (PROTOCOL.md): `Authorization: Bearer` on the upgrade, `subscribe` with a
  `ref`, events `{"type": "event", "data": {...}}`; fan-out markers in `data.m` (an
  external publish `{"event": "broadcast", "data": {"m": ...}}` on the Redis channel),
  chat markers as the text of `chat.send`; JSON `ping` answered by `pong`.
- ``room`` (the tutorial peer and the bare `websockets` server): the socket joins the
  room named in the URL; `{"message": marker}` goes to everyone in the room.
"""

from __future__ import annotations

import json
from typing import Any

OURS = "ours"
ROOM = "room"


def marker(kind: str, step: int, a: int, b: int, ts: float) -> str:
    return f"{kind}|{step}|{a}|{b}|{ts:.6f}"


class OursAdapter:
    """PROTOCOL.md over JSON text frames."""

    name = OURS
    supports_since = True

    def __init__(self, base: str) -> None:
        self.base = base  # ws://127.0.0.1:8000

    def url(self, spec: dict[str, Any]) -> str:
        return f"{spec.get('base') or self.base}/ws/"

    def headers(self, spec: dict[str, Any]) -> dict[str, str]:
        return {"Authorization": f"Bearer {spec['token']}"}

    def subscribe_frames(self, spec: dict[str, Any], ref: int, since: str | None) -> list[str]:
        """One `subscribe` per topic of the spec (`topic`, or `topics`: refs `ref`, `ref + 1`, ...)."""
        names = spec.get("topics") or ([spec["topic"]] if spec.get("topic") else [])
        frames = []
        for n, topic in enumerate(names):
            frame: dict[str, Any] = {"type": "subscribe", "topic": topic, "ref": ref + n}
            if since:
                frame["since"] = since
            frames.append(json.dumps(frame))
        return frames

    def ping_frame(self, ref: int, ts: float) -> str:
        return json.dumps({"type": "ping", "ref": ref})

    def chat_frame(self, spec: dict[str, Any], text: str, ref: int) -> str:
        return json.dumps(
            {
                "type": "chat.send",
                "conversationId": spec["conversationId"],
                "message": text,
                "clientMessageId": f"lt-{ref}-{text[:40]}",
                "ref": ref,
            }
        )

    @staticmethod
    def parse(raw: str | bytes) -> tuple[str, Any, Any]:
        """-> (kind, a, b): ("event", marker|None, offset|None), ("reply", ref, frame), ("pong", ref, None)."""
        frame = json.loads(raw)
        kind = frame.get("type")
        if kind == "event":
            data = frame.get("data") or {}
            event = frame.get("event")
            mark = None
            if event == "chat.message":
                mark = data.get("message")
            elif event == "broadcast":
                mark = data.get("m")
            return "event", mark, frame.get("offset")
        if kind == "reply":
            return "reply", frame.get("ref"), frame
        if kind == "pong":
            return "pong", frame.get("ref"), None
        return str(kind), None, frame


class RoomAdapter:
    """The tutorial chat's traffic: the room is in the URL, frames are `{"message": ...}`."""

    name = ROOM
    supports_since = False

    def __init__(self, base: str) -> None:
        self.base = base

    def url(self, spec: dict[str, Any]) -> str:
        return f"{spec.get('base') or self.base}/ws/chat/{spec['room']}/"

    def headers(self, spec: dict[str, Any]) -> dict[str, str] | None:
        # The tutorial is a browser chat behind AllowedHostsOriginValidator, which refuses
        # a handshake without an Origin: send the one a browser on the page would.
        return {"Origin": "http://127.0.0.1"}

    def subscribe_frames(self, spec: dict[str, Any], ref: int, since: str | None) -> list[str]:
        return []

    def ping_frame(self, ref: int, ts: float) -> str:
        return json.dumps({"message": marker("P", 0, ref, 0, ts)})

    def chat_frame(self, spec: dict[str, Any], text: str, ref: int) -> str:
        return json.dumps({"message": text})

    @staticmethod
    def parse(raw: str | bytes) -> tuple[str, Any, Any]:
        mark = json.loads(raw).get("message")
        if isinstance(mark, str) and mark.startswith("P|"):
            return "pong", int(mark.split("|")[2]), None
        return "event", mark, None


def adapter_for(kind: str, base: str) -> OursAdapter | RoomAdapter:
    return OursAdapter(base) if kind == OURS else RoomAdapter(base)
