"""The board's assignees and maintenance workers in a real browser against a real uvicorn process:
the manager assigns a tenant's request to a maintenance worker from the board (`POST /work-orders`
with `workerId`), the card moves to Assigned naming the worker, the tenant sees the status and the
notification, the worker's bell hears the work order; the "Maintenance workers" panel shows the
worker coming online (a socket open: `maintenance:active:workers`), working, and going offline.

`PMS_SCREENSHOTS=1` writes the board's screenshot into docs/screenshots (the README shows it)."""

import asyncio
import os
from pathlib import Path

import pytest
from playwright.async_api import expect

from apps.accounts.models import User
from tests.apps.api_world import World, build_world
from tests.e2e.conftest import ServerFactory, ServerProcess, login
from tests.e2e.test_notifications import call
from tests.factories import make_user
from tests.web.conftest import DESKTOP, PHONE, PageFactory, screenshot_path
from tests.web.test_bell import new_page, patient_expect, token_of  # noqa: F401  (fixtures)
from tests.web.test_pages import sign_in

pytestmark = pytest.mark.django_db(transaction=True)
KEEP_SCREENSHOTS = os.environ.get("PMS_SCREENSHOTS") == "1"
# The board reads the workers again every 10 s (no topic carries them: see board.js); a change
# shows within that, plus the worker's socket closing and a loaded machine's slack.
WORKERS_WAIT_MS = 25000


@pytest.fixture
def worker_world(start_servers: ServerFactory) -> tuple[World, User, ServerProcess]:
    """The api_world, a maintenance worker (a tenant-type account holding `maintenance_staff`, as in
    the demo), one uvicorn."""
    world = build_world()
    worker = make_user(first_name="Sam", last_name="Okafor", roles=("maintenance_staff",))
    [server] = start_servers(1)
    return world, worker, server


@pytest.mark.timeout(180)
async def test_the_manager_assigns_a_request_to_a_worker_who_shows_online_and_working(
    worker_world: tuple[World, User, ServerProcess],
    new_page: PageFactory,  # noqa: F811  (the fixture imported from test_bell)
    tmp_path: Path,
) -> None:
    world, worker, server = worker_world
    board = await new_page(DESKTOP)
    await sign_in(board, server, world.manager.email)
    await expect(board.locator("#conn")).to_have_text("Live")
    workers = board.get_by_role("region", name="Maintenance workers")
    sam = workers.locator(".worker", has_text="Sam Okafor")
    await expect(sam.locator(".worker-state")).to_have_text("Offline")
    await expect(sam).to_contain_text("No open work orders")

    tenant = await new_page(PHONE)
    await sign_in(tenant, server, world.tenant.email)
    await expect(tenant.locator("#conn")).to_have_text("Live")
    await tenant.get_by_label("Category").select_option("electrical")
    await tenant.get_by_label("Description").fill("The hallway outlet sparks")
    await tenant.get_by_role("button", name="File request").click()
    card = board.locator(".board-card", has_text="The hallway outlet sparks")
    await expect(card).to_have_attribute("data-status", "submitted")
    await expect(card.locator(".assignee")).to_have_text("Assigned to: nobody yet")

    # The worker signs in on their phone (their socket joins the active workers).
    phone = await new_page(PHONE)
    await sign_in(phone, server, worker.email)
    await expect(phone.locator("#conn")).to_have_text("Live")
    await expect(sam.locator(".worker-state")).to_have_text("Online", timeout=WORKERS_WAIT_MS)

    # Assign from the board, with the keyboard's controls (label, option, button).
    await card.get_by_label("Assign to").select_option(label="Sam Okafor (online)")
    await card.get_by_role("button", name="Assign").click()
    assigned = board.locator(".column[data-status=assigned] .board-card", has_text="The hallway outlet sparks")
    await expect(assigned.locator(".assignee")).to_have_text("Assigned to: Sam Okafor")
    await expect(assigned.get_by_label("Assign to")).to_have_value("")  # ready for another assignment
    await expect(board.locator(".column[data-status=submitted] .board-card")).to_have_count(0)
    await expect(sam).to_contain_text("electrical, unit")
    await expect(tenant.locator(".request .status")).to_have_text("Assigned")
    await expect(tenant.locator("#unread")).to_have_text("1")
    await expect(phone.locator("#unread")).to_have_text("1")  # `work_order_assigned`: their in-house record
    await phone.get_by_role("button", name="Notifications").click()
    await expect(phone.locator(".bell-item")).to_contain_text("You were assigned a work order")

    # The worker starts the work (their app, over HTTP): the panel shows them working, live.
    token = await token_of(phone)
    [order] = (await asyncio.to_thread(call, server, "GET", "/work-orders", token))["items"]
    await asyncio.to_thread(call, server, "PATCH", f"/work-orders/{order['id']}", token, {"status": "in_progress"})
    await expect(sam.locator(".worker-state")).to_have_text("Online · working")
    await expect(sam).to_contain_text("(In progress)")

    board_shot = screenshot_path("board.png", tmp_path, KEEP_SCREENSHOTS)
    await board.screenshot(path=str(board_shot), full_page=True)

    # Signing out closes the worker's last socket: the board shows them offline.
    await phone.get_by_role("button", name="Sign out").click()
    await expect(phone).to_have_url(f"{server.http_url}/")
    await expect(sam.locator(".worker-state")).to_have_text("Offline", timeout=WORKERS_WAIT_MS)


async def test_a_landlord_can_assign_to_a_vendor_and_the_card_names_the_company(
    world_server: tuple[World, ServerProcess],
    new_page: PageFactory,  # noqa: F811  (the fixture imported from test_bell)
) -> None:
    world, server = world_server
    vendor = await asyncio.to_thread(make_vendor, server, world)
    board = await new_page(DESKTOP)
    await sign_in(board, server, world.landlord.email)
    await expect(board.locator("#conn")).to_have_text("Live")
    await expect(board.get_by_role("region", name="Maintenance workers")).to_contain_text("No maintenance workers yet")
    token = await token_of(board)
    body = {"unitId": str(world.unit.pk), "category": "plumbing", "description": "Toilet runs all night"}
    await asyncio.to_thread(call, server, "POST", "/maintenance-requests", token, body)
    card = board.locator(".board-card", has_text="Toilet runs all night")
    await expect(card).to_contain_text(f"Unit {world.unit.unit_number}")
    await card.get_by_label("Assign to").select_option(label=vendor["companyName"])
    await card.get_by_role("button", name="Assign").click()
    await expect(board.locator(".column[data-status=assigned] .board-card .assignee")).to_have_text(
        "Assigned to: Rose City Plumbing"
    )


def make_vendor(server: ServerProcess, world: World) -> dict[str, str]:
    token = login(server, world.landlord.email)["token"]
    body = {"companyName": "Rose City Plumbing", "phone": "503-555-0142", "serviceCategory": "plumbing"}
    return dict(call(server, "POST", "/vendors", token, body))
