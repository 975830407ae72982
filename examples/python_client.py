#!/usr/bin/env python3
"""A small PMS realtime client (asyncio + `websockets`): docs/protocol.md, README.md "Clients".

Logs in over HTTP, opens /ws/ with `Authorization: Bearer`, subscribes to its notifications
and to one conversation, sends one chat message (idempotent by its clientMessageId), prints
what arrives; after a drop it reconnects with backoff and resubscribes with `since`; told
`session.expiring`, it renews the session over HTTP and hands the socket the new token."""

import argparse
import asyncio
import json
import random
import sys
import time
import urllib.error
import urllib.request
import uuid
from functools import partial

import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

STOP = {
    4401: "token rejected or expired: log in again",
    4409: "session revoked (logged out elsewhere)",
    1009: "frame too big: fix the client",
}
say = partial(print, flush=True)


def login(base: str, email: str, password: str) -> dict:
    body = json.dumps({"email": email, "password": password}).encode()
    request = urllib.request.Request(f"{base}/api/v1/auth/login", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.URLError as exc:  # HTTPError is one too
        http = isinstance(exc, urllib.error.HTTPError)
        raise SystemExit(f"login failed: {f'HTTP {exc.code} {exc.read().decode()}' if http else exc.reason}") from None


def refresh(base: str, token: str) -> dict | None:
    """POST /api/v1/auth/refresh: a new token (the old one stops after a short grace); None on failure."""
    request = urllib.request.Request(f"{base}/api/v1/auth/refresh", b"", {"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.URLError as exc:
        say(f"refresh failed: {exc}")
        return None


class Client:
    def __init__(self, args: argparse.Namespace, token: str, user_id: str) -> None:
        self.args, self.token = args, token
        self.topics = [f"notifications:{user_id}"] + (
            [f"chat:messages:{args.conversation}"] if args.conversation else []
        )
        self.offsets: dict[str, str] = {}  # topic -> last offset seen (a real app persists this)
        self.seen: set[str] = set()  # message ids already shown: delivery is at least once
        self.client_message_id = str(uuid.uuid4())  # the same on every retry: never a duplicate
        self.sent = not (args.message and args.conversation)
        self.pending: dict[int, tuple[str, str | None]] = {}  # ref -> (command, topic)
        self.next_ref, self.delay = 0, 1.0

    async def command(self, ws, frame: dict, topic: str | None = None) -> None:
        self.next_ref += 1
        self.pending[self.next_ref] = (frame["type"], topic)
        await ws.send(json.dumps({**frame, "ref": self.next_ref}))

    def on_event(self, frame: dict) -> None:
        topic, event, data = frame["topic"], frame["event"], frame.get("data")
        if frame.get("offset"):  # ephemeral events (chat.typing, presence) have none
            self.offsets[topic] = frame["offset"]
        message_id = data.get("id") if event == "chat.message" and isinstance(data, dict) else None
        duplicate = message_id is not None and message_id in self.seen
        self.seen.add(message_id)
        text = data["message"] if isinstance(data, dict) and "message" in data else json.dumps(data)
        say(f"event {event} on {topic}: {text}" + (" (duplicate, ignored)" if duplicate else ""))

    def on_reply(self, frame: dict) -> None:
        kind, topic = self.pending.pop(frame.get("ref"), ("?", None))
        if not frame["ok"]:
            say(f"reply {kind} failed: {frame['error']['code']}: {frame['error']['message']}")
            if kind == "chat.send" and frame["error"]["code"] not in ("unavailable", "rate_limited"):
                self.sent = True  # a bad request stays bad: do not resend it
            return
        data = frame["data"]
        if kind == "subscribe":
            self.offsets[topic] = data["offset"]
            missed = data.get("missed", [])  # present when `since` was sent
            gap = " but events were lost: reload this topic's state over HTTP" if data.get("recovered") is False else ""
            say(f"subscribed {topic} at {data['offset']}, {len(missed)} missed{gap}")
            for event in missed:
                self.on_event(event)
        elif kind == "auth.refresh":
            say(f"session renewed until {data['expiresAt']}")
        elif kind == "chat.send":
            self.sent = True
            self.seen.add(data["id"])
            say(f"reply chat.send ok: stored message {data['id']}: {data['message']}")

    async def session(self, ws_url: str, deadline: float) -> None:
        async with websockets.connect(
            ws_url,
            additional_headers={"Authorization": f"Bearer {self.token}"},
            subprotocols=["pms.v1.json"],
            open_timeout=10,
        ) as ws:
            say("connected")
            self.delay = 1.0  # a good connection resets the backoff
            self.pending.clear()
            for topic in self.topics:
                since = {"since": self.offsets[topic]} if topic in self.offsets else {}
                await self.command(ws, {"type": "subscribe", "topic": topic, **since}, topic)
            if not self.sent:
                await self.command(
                    ws,
                    {
                        "type": "chat.send",
                        "conversationId": self.args.conversation,
                        "message": self.args.message,
                        "clientMessageId": self.client_message_id,
                    },
                )
            while (left := deadline - time.monotonic()) > 0:
                try:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), left))
                except TimeoutError:
                    return
                if frame["type"] == "event":
                    self.on_event(frame)
                elif frame["type"] == "reply":
                    self.on_reply(frame)
                elif frame["type"] == "unsubscribed":  # access lost: nothing more comes on it
                    say(f"access to {frame['topic']} lost ({frame['reason']})")
                    self.topics = [topic for topic in self.topics if topic != frame["topic"]]
                elif frame["type"] == "session.expiring":  # renew now; the socket and subscriptions stay
                    renewed = await asyncio.to_thread(refresh, self.args.url, self.token)
                    if renewed is not None:
                        self.token = renewed["token"]  # also the token of the next reconnect
                        await self.command(ws, {"type": "auth.refresh", "token": self.token})
                elif frame["type"] == "error":
                    say(f"error: {frame['error']['code']}: {frame['error']['message']}")

    async def run(self) -> int:
        ws_url = self.args.url.replace("http", "ws", 1) + "/ws/"
        deadline = time.monotonic() + self.args.seconds
        while time.monotonic() < deadline:
            try:
                await self.session(ws_url, deadline)
                return 0  # ran for --seconds
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else 1006
                if code in STOP:
                    say(f"closed {code}: {STOP[code]}; stopping")
                    return 1
                say(f"closed {code}: reconnecting with since")  # 1012 restart, 4008 too slow, 1006 network
                if code == 4429:
                    self.delay = max(self.delay, 30.0)  # flooded the server: back off harder
            except (OSError, InvalidStatus, TimeoutError) as exc:
                say(f"connect failed ({exc}); retrying")
            pause = self.delay * random.uniform(0.5, 1.0)  # jitter: not every phone at once
            await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            self.delay = min(self.delay * 2, 60.0)
        return 0


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--url", default="http://127.0.0.1:8000", type=lambda url: url.rstrip("/"), help="the server's HTTP base URL"
    )
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--conversation", help="a conversation id to subscribe (and send) to")
    parser.add_argument("--message", help="a chat message to send once")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to run")
    args = parser.parse_args()
    session = await asyncio.to_thread(login, args.url, args.email, args.password)
    say(f"logged in as {session['user']['email']} ({session['user']['userType']})")
    return await Client(args, session["token"], session["user"]["id"]).run()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
