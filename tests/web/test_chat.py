"""The web app's chat in a real browser (Debian's chromium through Playwright) against real uvicorn
processes: a tenant and a manager in two browser contexts chat both ways with typing indicators,
read receipts and presence; the manager's inbox counts unread live; history pages upward; after
the server process is killed and restarted the pages show "Reconnecting…" and then what was sent
meanwhile once each, and a message sent during the outage shows "Sending…" and lands once.

`PMS_SCREENSHOTS=1` writes docs/screenshots/chat.png and chat-inbox.png (the README shows them)."""

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from django.test import Client
from playwright.async_api import Page, WebSocketRoute, expect

from apps.accounts.models import User
from realtime import keys, topics
from tests.apps.api_world import World, build_world
from tests.e2e.conftest import ServerFactory, ServerProcess, kill, login
from tests.e2e.test_notifications import call
from tests.factories import make_lease, make_unit, make_user
from tests.web.conftest import DESKTOP, PHONE, PageFactory, screenshot_path
from tests.web.test_pages import sign_in

# Two browser contexts, a server killed and restarted: a minute is tight on a busy 2-core machine.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]
KEEP_SCREENSHOTS = os.environ.get("PMS_SCREENSHOTS") == "1"


@dataclass
class Chat:
    world: World
    servers: list[ServerProcess]
    conversation_id: str
    tenant_token: str
    manager_token: str

    @property
    def server(self) -> ServerProcess:
        return self.servers[0]

    def url(self, server: ServerProcess | None = None) -> str:
        return f"{(server or self.server).http_url}/chat/{self.conversation_id}/"


def _rename(user: User, first: str, last: str) -> None:
    User.objects.filter(pk=user.pk).update(first_name=first, last_name=last)


def _chat(start_servers: ServerFactory, count: int, *, neighbour: bool = False) -> Chat:
    """The api_world with names, `count` uvicorn processes, a conversation the tenant started with
    their manager (over HTTP, like the app would). `neighbour`: a second tenant of the property
    has talked with the manager before (the inbox then holds two conversations)."""
    world = build_world()
    _rename(world.tenant, "Ana", "Souza")
    _rename(world.manager, "Diego", "Ramirez")
    _rename(world.landlord, "Margaret", "Chen")
    ben = make_user(first_name="Ben", last_name="Carter") if neighbour else None
    if ben is not None:
        make_lease(unit=make_unit(property=world.prop, unit_number="102"), tenants=(ben,))
    servers = start_servers(count)
    tenant_token = login(servers[0], world.tenant.email)["token"]
    manager_token = login(servers[-1], world.manager.email)["token"]
    if ben is not None:
        ben_token = login(servers[0], ben.email)["token"]
        body = {"participants": [str(world.manager.pk)], "subject": "Heating", "propertyId": str(world.prop.pk)}
        earlier = call(servers[0], "POST", "/conversations", ben_token, body)["id"]
        send_over_http(servers[0], ben_token, earlier, "The back bedroom radiator is cold.", "ben-1")
        send_over_http(servers[0], manager_token, earlier, "Cascade Heating comes tomorrow at 9.", "diego-1")
    body = {"participants": [str(world.manager.pk)], "subject": "Kitchen faucet", "propertyId": str(world.prop.pk)}
    conversation = call(servers[0], "POST", "/conversations", tenant_token, body)
    return Chat(world, servers, conversation["id"], tenant_token, manager_token)


@pytest.fixture
def chat(start_servers: ServerFactory) -> Chat:
    return _chat(start_servers, 1)


@pytest.fixture
def chat_with_neighbour(start_servers: ServerFactory) -> Chat:
    """As `chat`, and the manager has an earlier conversation with another tenant."""
    return _chat(start_servers, 1, neighbour=True)


@pytest.fixture
def chat_two_servers(start_servers: ServerFactory) -> Chat:
    """As `chat`, with a second process sharing the stores (the first may be killed)."""
    return _chat(start_servers, 2)


def send_over_http(server: ServerProcess, token: str, conversation_id: str, text: str, client_id: str) -> Any:
    body = {"message": text, "clientMessageId": client_id}
    return call(server, "POST", f"/conversations/{conversation_id}/messages", token, body)


def history(server: ServerProcess, token: str, conversation_id: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = call(server, "GET", f"/conversations/{conversation_id}/messages?limit=100", token)[
        "messages"
    ]
    return messages


async def open_chat(page: Page, chat: Chat, email: str, viewport_home: str) -> None:
    await sign_in(page, chat.server, email)
    await expect(page).to_have_url(f"{chat.server.http_url}{viewport_home}")
    await page.goto(chat.url())
    await expect(page.locator("#conn")).to_have_text("Live")
    await expect(page.get_by_role("log", name="Messages")).to_have_attribute("aria-busy", "false")  # history loaded


async def until(condition: Callable[[], bool], timeout: float = 10.0, what: Callable[[], object] = str) -> None:
    """Wait for a condition of the test's own state (polled; fails after `timeout` seconds, saying `what()`)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met in {timeout} s: {what()}")
        await asyncio.sleep(0.05)


def bubble(page: Page, text: str) -> Any:
    return page.locator(".msg", has=page.locator(".msg-text", has_text=text))


def test_the_chat_pages_are_served_as_shells_without_data(client: Client) -> None:
    assert "Messages" in client.get("/chat/").content.decode()
    response = client.get("/chat/6f1b0c5e-3d0a-4a4e-9f59-1b2f3c4d5e6f/")
    assert response.status_code == 200
    assert 'data-conversation-id="6f1b0c5e-3d0a-4a4e-9f59-1b2f3c4d5e6f"' in response.content.decode()
    assert client.get("/chat/not-a-uuid/").status_code == 404


async def test_tenant_and_manager_chat_both_ways_with_typing_read_receipts_presence_and_unread(
    chat_with_neighbour: Chat, new_page: PageFactory, tmp_path: Path
) -> None:
    chat = chat_with_neighbour
    server = chat.server
    manager = await new_page(DESKTOP)
    await sign_in(manager, server, chat.world.manager.email)
    await expect(manager).to_have_url(f"{server.http_url}/board/")
    await manager.get_by_role("link", name="Messages").click()
    await expect(manager).to_have_url(f"{server.http_url}/chat/")
    row = manager.locator(f'.inbox-row[data-id="{chat.conversation_id}"]')
    await expect(row).to_contain_text("Ana Souza")
    await expect(row).to_contain_text("Kitchen faucet")
    await expect(row.locator(".unread")).to_have_count(0)
    earlier = manager.locator(".inbox-row", has_text="Ben Carter")
    await expect(earlier.locator(".inbox-preview")).to_have_text("You: Cascade Heating comes tomorrow at 9.")
    await expect(earlier.locator(".unread")).to_have_text("1 unread")  # Ben's message, never opened
    await expect(row.locator(".dot")).to_have_attribute("data-status", "offline")

    tenant = await new_page(PHONE)
    await sign_in(tenant, server, chat.world.tenant.email)
    await expect(tenant).to_have_url(f"{server.http_url}/requests/")
    await tenant.get_by_role("link", name="Messages").click()
    await tenant.get_by_role("link", name="Diego Ramirez").click()
    await expect(tenant).to_have_url(chat.url())
    await expect(tenant.get_by_role("heading", level=1)).to_have_text("Diego Ramirez · Kitchen faucet")
    await expect(tenant.get_by_role("log", name="Messages")).to_have_attribute("aria-busy", "false")
    # Each side sees the other's presence live.
    await expect(row.locator(".dot")).to_have_attribute("data-status", "online")
    await expect(tenant.locator(".person .dot")).to_have_attribute("data-status", "online")

    # The tenant types: the manager's inbox shows it; she sends: one unread, moved to the top.
    await tenant.get_by_label("Your message").press_sequentially("The kitchen faucet drips all night.")
    await expect(row.locator(".inbox-preview")).to_have_text("typing…")
    await tenant.get_by_role("button", name="Send").click()
    mine = bubble(tenant, "The kitchen faucet drips all night.")
    await expect(mine.locator(".msg-status")).to_have_text("Sent")
    await expect(row.locator(".unread")).to_have_text("1 unread")
    await expect(row.locator(".inbox-preview")).to_have_text("The kitchen faucet drips all night.")
    await expect(manager.locator(".inbox-row").first).to_have_attribute("data-id", chat.conversation_id)
    await manager.screenshot(path=str(screenshot_path("chat-inbox.png", tmp_path, KEEP_SCREENSHOTS)))

    # The manager opens it: it is marked read, and the tenant sees "Read".
    await row.get_by_role("link").click()
    await expect(manager).to_have_url(chat.url())
    await expect(bubble(manager, "The kitchen faucet drips all night.")).to_have_count(1)
    await expect(mine.locator(".msg-status")).to_have_text("Read")
    await expect(manager.locator(".person")).to_have_text("Ana Souza: online")

    # The manager types and answers; the tenant sees the indicator, then the answer, and reads it.
    await manager.get_by_label("Your message").press_sequentially("Thanks Ana, would Thursday")
    await expect(tenant.locator("#typing")).to_have_text("Diego Ramirez is typing…")
    await manager.get_by_label("Your message").press_sequentially(" afternoon work for a plumber?")
    await manager.get_by_label("Your message").press("Enter")  # Enter sends
    answer = bubble(tenant, "Thanks Ana, would Thursday afternoon work for a plumber?")
    await expect(answer).to_have_count(1)
    await expect(answer.locator(".msg-who")).to_have_text("Diego Ramirez")
    await expect(tenant.locator("#typing")).to_have_text("")  # their message ends the indicator
    await expect(
        bubble(manager, "Thanks Ana, would Thursday afternoon work for a plumber?").locator(".msg-status")
    ).to_have_text("Read")

    # And back: a second exchange, each shown once on both sides.
    await tenant.get_by_label("Your message").fill("Thursday after 2 pm is perfect.")
    await tenant.get_by_label("Your message").press("Enter")
    await expect(bubble(manager, "Thursday after 2 pm is perfect.")).to_have_count(1)
    await expect(bubble(tenant, "Thursday after 2 pm is perfect.").locator(".msg-status")).to_have_text("Read")
    await expect(tenant.locator(".msg")).to_have_count(3)
    await expect(manager.locator(".msg")).to_have_count(3)
    await tenant.screenshot(path=str(screenshot_path("chat.png", tmp_path, KEEP_SCREENSHOTS)))

    # Both read everything: the inbox has no unread left (recounted over HTTP after the read).
    await manager.get_by_role("link", name="All conversations").click()
    await expect(manager.locator(f'.inbox-row[data-id="{chat.conversation_id}"] .dot')).to_have_attribute(
        "data-status", "online"
    )
    await expect(manager.locator(f'.inbox-row[data-id="{chat.conversation_id}"] .unread')).to_have_count(0)
    # The tenant leaves: her dot goes out on the manager's inbox.
    await tenant.context.close()
    await expect(manager.locator(f'.inbox-row[data-id="{chat.conversation_id}"] .dot')).to_have_attribute(
        "data-status", "offline"
    )


async def test_history_pages_upward_when_scrolled_to_the_top(chat: Chat, new_page: PageFactory) -> None:
    for number in range(1, 46):
        await asyncio.to_thread(
            send_over_http,
            chat.server,
            chat.manager_token,
            chat.conversation_id,
            f"Note {number:02d}",
            f"note-{number}",
        )
    tenant = await new_page(PHONE)
    await open_chat(tenant, chat, chat.world.tenant.email, "/requests/")
    await expect(tenant.locator(".msg")).to_have_count(30)  # the newest page
    await expect(tenant.locator(".msg .msg-text").first).to_have_text("Note 16")
    await expect(tenant.locator(".msg .msg-text").last).to_have_text("Note 45")
    await tenant.locator("#chat-scroll").evaluate("(element) => { element.scrollTop = 0; }")
    await expect(tenant.locator(".msg")).to_have_count(45)
    await expect(tenant.locator(".msg .msg-text").first).to_have_text("Note 01")
    await expect(tenant.get_by_role("button", name="Load older messages")).to_be_hidden()
    texts = await tenant.locator(".msg .msg-text").all_text_contents()
    assert texts == [f"Note {number:02d}" for number in range(1, 46)]


async def test_after_a_kill_and_restart_the_chat_shows_what_was_missed_once_and_a_pending_send_lands_once(
    chat_two_servers: Chat,
    restart_server: Callable[[ServerProcess], ServerProcess],
    new_page: PageFactory,
) -> None:
    chat = chat_two_servers
    server, other = chat.servers
    tenant = await new_page(PHONE)
    await open_chat(tenant, chat, chat.world.tenant.email, "/requests/")
    manager = await new_page(DESKTOP)
    await open_chat(manager, chat, chat.world.manager.email, "/board/")
    await tenant.get_by_label("Your message").fill("Is the plumber still coming?")
    await tenant.get_by_role("button", name="Send").click()
    await expect(bubble(manager, "Is the plumber still coming?")).to_have_count(1)

    kill(server)
    await expect(tenant.locator("#conn")).to_have_text("Reconnecting…")
    await expect(manager.locator("#conn")).to_have_text("Reconnecting…")
    # Meanwhile the manager answers from another device (HTTP on the other process) ...
    for number, text in enumerate(["Yes, on Thursday.", "He will call you before."]):
        await asyncio.to_thread(
            send_over_http, other, chat.manager_token, chat.conversation_id, text, f"outage-{number}"
        )
    # ... and the tenant sends while the server is down: it waits as "Sending…".
    await tenant.get_by_label("Your message").fill("Thank you!")
    await tenant.get_by_role("button", name="Send").click()
    pending = bubble(tenant, "Thank you!")
    await expect(pending.locator(".msg-status")).to_have_text("Sending…")

    await asyncio.to_thread(restart_server, server)
    await expect(tenant.locator("#conn")).to_have_text("Live", timeout=30000)
    await expect(manager.locator("#conn")).to_have_text("Live", timeout=30000)
    for page in (tenant, manager):
        await expect(bubble(page, "Yes, on Thursday.")).to_have_count(1)
        await expect(bubble(page, "He will call you before.")).to_have_count(1)
        await expect(bubble(page, "Thank you!")).to_have_count(1)
        await expect(page.locator(".msg")).to_have_count(4)
    await expect(pending.locator(".msg-status")).to_have_text("Read")  # stored, then read by the manager
    stored = await asyncio.to_thread(history, other, chat.tenant_token, chat.conversation_id)
    # Each stored once. (Not compared in order: history is in ObjectId order, and ids made by two
    # processes within the same second order by their process part, not by time.)
    assert sorted(message["message"] for message in stored) == sorted(
        ["Is the plumber still coming?", "Yes, on Thursday.", "He will call you before.", "Thank you!"]
    )
    assert (
        await tenant.evaluate("() => Object.keys(sessionStorage).filter((key) => key.startsWith('pms.chat.outbox'))")
        == []
    )


async def test_a_send_whose_reply_was_lost_is_retried_with_the_same_client_message_id_and_stored_once(
    chat: Chat, new_page: PageFactory
) -> None:
    """The socket drops after the server stored the message but before the page heard back (the
    reply and the event are swallowed by a route between them): the page retries with the same
    `clientMessageId` after the reconnect, and the message is stored and shown once."""
    sends: list[dict[str, Any]] = []
    sockets: list[WebSocketRoute] = []
    closing: list[asyncio.Future[None]] = []

    def route(ws: WebSocketRoute) -> None:
        sockets.append(ws)
        upstream = ws.connect_to_server()
        cut: dict[str, Any] = {"ref": None, "done": False}

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "chat.send":
                if not sends:  # the first send: this socket is cut once it is stored
                    cut["ref"] = frame["ref"]
                sends.append(frame)
            upstream.send(message)

        def from_server(message: str | bytes) -> None:
            if cut["done"]:
                return
            frame = json.loads(message)
            stored = (frame.get("type") == "reply" and frame.get("ref") == cut["ref"]) or (
                frame.get("event") == "chat.message"
            )
            if cut["ref"] is not None and stored:
                # The server has stored it; neither its reply nor its event reaches the page.
                cut["done"] = True
                closing.append(asyncio.ensure_future(ws.close(code=4000, reason="cut")))
                closed = upstream.close()  # the server side's close is synchronous in Playwright 1.63
                if asyncio.iscoroutine(closed):  # (typed as a coroutine like the page side's)
                    closing.append(asyncio.ensure_future(closed))
                return
            ws.send(message)

        ws.on_message(from_page)
        upstream.on_message(from_server)

    tenant = await new_page(PHONE)
    await tenant.route_web_socket("**/ws/", route)
    await open_chat(tenant, chat, chat.world.tenant.email, "/requests/")
    await tenant.get_by_label("Your message").fill("Only once, please.")
    await tenant.get_by_role("button", name="Send").click()
    await expect(tenant.locator("#conn")).to_have_text("Live", timeout=30000)
    await expect(bubble(tenant, "Only once, please.").locator(".msg-status")).to_have_text("Sent", timeout=15000)
    await until(
        lambda: len(sends) == 2, what=lambda: sends
    )  # the route may see the page's frame after the page shows "Sent"
    assert len(sockets) >= 2  # the chat page's first socket and the one after the cut
    assert sends[0]["clientMessageId"] == sends[1]["clientMessageId"]
    await expect(bubble(tenant, "Only once, please.")).to_have_count(1)
    stored = await asyncio.to_thread(history, chat.server, chat.tenant_token, chat.conversation_id)
    assert [message["message"] for message in stored] == ["Only once, please."]


async def test_when_the_chat_history_was_lost_meanwhile_the_conversation_reloads_over_http(
    chat_two_servers: Chat,
    restart_server: Callable[[ServerProcess], ServerProcess],
    new_page: PageFactory,
    clean_redis: redis.Redis,
) -> None:
    chat = chat_two_servers
    server, other = chat.servers
    tenant = await new_page(PHONE)
    await open_chat(tenant, chat, chat.world.tenant.email, "/requests/")
    await asyncio.to_thread(send_over_http, other, chat.manager_token, chat.conversation_id, "Before the drop", "a")
    await expect(bubble(tenant, "Before the drop")).to_have_count(1)

    kill(server)
    await expect(tenant.locator("#conn")).to_have_text("Reconnecting…")
    await asyncio.to_thread(send_over_http, other, chat.manager_token, chat.conversation_id, "During the drop", "b")
    topic = topics.chat_messages(chat.conversation_id)
    clean_redis.delete(keys.topic_history(topic), keys.topic_epoch(topic))  # Redis lost the topic's history
    reloads: list[str] = []
    tenant.on("request", lambda request: reloads.append(request.url))

    await asyncio.to_thread(restart_server, server)
    await expect(tenant.locator("#conn")).to_have_text("Live", timeout=30000)
    await expect(bubble(tenant, "During the drop")).to_have_count(1)
    await expect(tenant.locator(".msg")).to_have_count(2)
    assert any(f"/conversations/{chat.conversation_id}/messages" in url for url in reloads), reloads
