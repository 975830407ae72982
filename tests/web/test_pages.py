"""The web app in a real browser (Debian's chromium through Playwright) against a real uvicorn
process: sign-in messages, a tenant filing a request that reaches a manager's board live, the
manager moving it and the tenant's page following live (status and the notification count).

`PMS_SCREENSHOTS=1` writes the screenshots into docs/screenshots (the README shows them)."""

import asyncio
import os
import re
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from django.test import Client
from playwright.async_api import Page, expect

from realtime import keys, topics
from tests.apps.api_world import World
from tests.e2e.conftest import ServerProcess, kill, login
from tests.e2e.test_notifications import call
from tests.factories import DEFAULT_PASSWORD
from tests.web.conftest import DESKTOP, PHONE, PageFactory, screenshot_path

pytestmark = pytest.mark.django_db(transaction=True)
KEEP_SCREENSHOTS = os.environ.get("PMS_SCREENSHOTS") == "1"


async def sign_in(page: Page, server: ServerProcess, email: str, password: str = DEFAULT_PASSWORD) -> None:
    await page.goto(f"{server.http_url}/")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


def test_the_pages_are_served_as_shells_without_data(client: Client) -> None:
    for path, heading in [
        ("/", "Sign in"),
        ("/requests/", "My maintenance requests"),
        ("/board/", "Maintenance board"),
    ]:
        response = client.get(path)
        assert response.status_code == 200
        assert heading in response.content.decode()


async def test_a_wrong_password_then_too_many_attempts_show_clear_messages(
    world_server: tuple[World, ServerProcess], new_page: PageFactory
) -> None:
    world, server = world_server
    page = await new_page(PHONE)
    await sign_in(page, server, world.tenant.email, "not the password")
    await expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    assert page.url == f"{server.http_url}/"
    for _ in range(5):  # PMS_LOGIN_RATE_LIMIT failures, then the limiter answers 429
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("button", name="Sign in")).to_be_enabled()
    await expect(page.get_by_role("alert")).to_have_text(
        re.compile(r"^Too many sign-in attempts\. Wait \d+ seconds and try again\.$")
    )


async def test_an_expired_session_sends_the_page_back_to_sign_in_with_a_message(
    world_server: tuple[World, ServerProcess], new_page: PageFactory
) -> None:
    world, server = world_server
    page = await new_page()
    await sign_in(page, server, world.tenant.email)
    await expect(page).to_have_url(f"{server.http_url}/requests/")
    await expect(page.locator("#conn")).to_have_text("Live")
    # The token stops being valid (as at expiry): the socket's auth and the API answer 401.
    await page.evaluate(
        "() => { const s = JSON.parse(sessionStorage.getItem('pms.session')); s.token = 'expired.token';"
        " sessionStorage.setItem('pms.session', JSON.stringify(s)); }"
    )
    await page.reload()
    await expect(page).to_have_url(f"{server.http_url}/?expired=1")
    await expect(page.get_by_role("alert")).to_have_text("Your session has expired. Please sign in again.")


async def test_a_request_filed_by_a_tenant_moves_live_on_the_board_and_back_on_the_tenant_page(
    world_server: tuple[World, ServerProcess], new_page: PageFactory, tmp_path: Path
) -> None:
    world, server = world_server
    board = await new_page(DESKTOP)
    await sign_in(board, server, world.manager.email)
    await expect(board).to_have_url(f"{server.http_url}/board/")
    await expect(board.locator("#conn")).to_have_text("Live")
    tenant = await new_page(PHONE)
    await sign_in(tenant, server, world.tenant.email)
    await expect(tenant).to_have_url(f"{server.http_url}/requests/")
    await expect(tenant.locator("#conn")).to_have_text("Live")
    await expect(tenant.locator("#unread")).to_have_text("0")
    await expect(tenant.get_by_label("Unit")).to_have_value(str(world.unit.pk))

    await tenant.get_by_label("Category").select_option("plumbing")
    await tenant.get_by_label("Priority").select_option("high")
    await tenant.get_by_label("Description").fill("The kitchen sink leaks under the cabinet")
    await tenant.get_by_role("button", name="File request").click()
    filed_at = time.monotonic()
    card = board.locator(".column[data-status=submitted] .board-card", has_text="The kitchen sink leaks")
    await expect(card).to_be_visible(timeout=1000)
    assert time.monotonic() - filed_at < 1.0
    await expect(card).to_contain_text(f"Unit {world.unit.unit_number}")
    await expect(card.locator(".badge")).to_have_text("high")
    await expect(tenant.locator(".request .status")).to_have_text("Submitted")

    await card.get_by_label("Status").select_option("in_progress")
    moved = board.locator(".column[data-status=in_progress] .board-card", has_text="The kitchen sink leaks")
    await expect(moved).to_be_visible()
    await expect(board.locator(".column[data-status=submitted] .board-card")).to_have_count(0)
    await expect(tenant.locator(".request .status")).to_have_text("In progress")
    await expect(tenant.locator("#unread")).to_have_text("1")

    await board.get_by_label("Priority").select_option("low")
    await expect(moved).to_be_hidden()
    await expect(board.locator("#col-in_progress .count")).to_have_text("(0)")
    await board.get_by_label("Priority").select_option("high")
    await board.get_by_label("Property").select_option(str(world.prop.pk))
    await expect(moved).to_be_visible()
    await expect(board.locator("#col-in_progress .count")).to_have_text("(1)")
    await board.get_by_label("Property").select_option("")
    await board.get_by_label("Priority").select_option("")

    await board.screenshot(path=str(screenshot_path("board.png", tmp_path, KEEP_SCREENSHOTS)), full_page=True)
    await tenant.screenshot(
        path=str(screenshot_path("tenant-requests.png", tmp_path, KEEP_SCREENSHOTS)), full_page=True
    )


async def test_after_the_server_is_killed_and_restarted_the_pages_show_what_they_missed_once(
    world_two_servers: tuple[World, ServerProcess, ServerProcess],
    restart_server: Callable[[ServerProcess], ServerProcess],
    new_page: PageFactory,
) -> None:
    world, server, other = world_two_servers
    board = await new_page(DESKTOP)
    await sign_in(board, server, world.manager.email)
    await expect(board.locator("#conn")).to_have_text("Live")
    tenant = await new_page(PHONE)
    await sign_in(tenant, server, world.tenant.email)
    await expect(tenant.locator("#conn")).to_have_text("Live")
    await tenant.get_by_label("Description").fill("The front door lock sticks")
    await tenant.get_by_role("button", name="File request").click()
    card = board.locator(".board-card", has_text="The front door lock sticks")
    await expect(card).to_have_attribute("data-status", "submitted")
    request_id = await card.get_attribute("data-id")

    reloads: list[str] = []  # HTTP list reloads after the drop: none when `since` recovers everything
    board.on("request", lambda request: reloads.append(request.url))
    tenant.on("request", lambda request: reloads.append(request.url))
    kill(server)
    await expect(board.locator("#conn")).to_have_text("Reconnecting…")
    await expect(tenant.locator("#conn")).to_have_text("Reconnecting…")
    # Meanwhile another process changes the request (its events and the tenant's notice are stored).
    token = (await asyncio.to_thread(login, other, world.manager.email))["token"]
    await asyncio.to_thread(call, other, "PATCH", f"/maintenance-requests/{request_id}", token, {"status": "assigned"})

    await asyncio.to_thread(restart_server, server)
    await expect(board.locator("#conn")).to_have_text("Live", timeout=30000)
    await expect(tenant.locator("#conn")).to_have_text("Live", timeout=30000)
    await expect(board.locator(".column[data-status=assigned] .board-card")).to_have_count(1)
    await expect(board.locator(".board-card")).to_have_count(1)
    await expect(tenant.locator(".request .status")).to_have_text("Assigned")
    await expect(tenant.locator("#unread")).to_have_text("1")  # the notification counted once
    # Recovered from the missed events (`recovered: true`), not by reloading the lists.
    assert [url for url in reloads if "maintenance-requests?" in url or "unread-count" in url] == []


async def test_the_connection_state_shows_offline_and_comes_back_live(
    world_server: tuple[World, ServerProcess], new_page: PageFactory
) -> None:
    world, server = world_server
    page = await new_page(PHONE)
    await sign_in(page, server, world.manager.email)
    await expect(page.locator("#conn")).to_have_text("Live")
    await page.context.set_offline(True)
    await expect(page.locator("#conn")).to_have_text("Offline")
    await page.context.set_offline(False)
    await expect(page.locator("#conn")).to_have_text("Live", timeout=15000)


async def test_when_the_history_was_lost_meanwhile_the_board_reloads_its_list_over_http(
    world_two_servers: tuple[World, ServerProcess, ServerProcess],
    restart_server: Callable[[ServerProcess], ServerProcess],
    new_page: PageFactory,
    clean_redis: redis.Redis,
) -> None:
    world, server, other = world_two_servers
    board = await new_page(DESKTOP)
    await sign_in(board, server, world.manager.email)
    await expect(board.locator("#conn")).to_have_text("Live")
    token = (await asyncio.to_thread(login, other, world.manager.email))["token"]
    body = {"unitId": str(world.unit.pk), "category": "electrical", "description": "The hall light flickers"}
    filed = await asyncio.to_thread(call, other, "POST", "/maintenance-requests", token, body)
    card = board.locator(".board-card", has_text="The hall light flickers")
    await expect(card).to_have_attribute("data-status", "submitted")

    kill(server)
    await expect(board.locator("#conn")).to_have_text("Reconnecting…")
    await asyncio.to_thread(
        call, other, "PATCH", f"/maintenance-requests/{filed['id']}", token, {"status": "completed"}
    )
    topic = topics.maintenance_updates(str(world.prop.pk))
    clean_redis.delete(keys.topic_history(topic), keys.topic_epoch(topic))  # Redis lost the topic's history
    reloads: list[str] = []
    board.on("request", lambda request: reloads.append(request.url))

    await asyncio.to_thread(restart_server, server)
    await expect(board.locator("#conn")).to_have_text("Live", timeout=30000)
    await expect(board.locator(".column[data-status=completed] .board-card")).to_have_count(1)
    await expect(board.locator(".board-card")).to_have_count(1)
    # `recovered: false`: the board read its list again over HTTP.
    assert any(f"maintenance-requests?propertyId={world.prop.pk}" in url for url in reloads), reloads


async def test_sign_out_revokes_the_session_and_returns_to_sign_in(
    world_server: tuple[World, ServerProcess], new_page: PageFactory
) -> None:
    world, server = world_server
    page = await new_page()
    await sign_in(page, server, world.landlord.email)
    await expect(page).to_have_url(f"{server.http_url}/board/")
    await expect(page.locator("#conn")).to_have_text("Live")
    token = await page.evaluate("() => JSON.parse(sessionStorage.getItem('pms.session')).token")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(f"{server.http_url}/")
    assert await page.evaluate("() => sessionStorage.getItem('pms.session')") is None
    with pytest.raises(urllib.error.HTTPError) as refused:
        await asyncio.to_thread(call, server, "GET", "/auth/me", token)
    assert refused.value.code == 401
