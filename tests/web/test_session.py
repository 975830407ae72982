"""The web app keeps its session alive: with sessions of a few seconds (as
tests/e2e/test_session_refresh.py runs them, the real expiry sweep in the test's time), the page
answers `session.expiring` with `POST /api/v1/auth/refresh` and `auth.refresh`, stays live past
the first token's expiry and still receives events."""

import asyncio

import pytest
from playwright.async_api import expect

from tests.apps.api_world import World
from tests.e2e.conftest import ServerProcess, login
from tests.e2e.test_notifications import call
from tests.web.conftest import PHONE, PageFactory
from tests.web.test_pages import sign_in

pytestmark = pytest.mark.django_db(transaction=True)

SESSION_TTL_SECONDS = 6
NOTICE_SECONDS = 3


@pytest.fixture
def server_env(server_env: dict[str, str]) -> dict[str, str]:
    """Short sessions and an early `session.expiring` on every server process."""
    return {
        **server_env,
        "PMS_SESSION_TTL_SECONDS": str(SESSION_TTL_SECONDS),
        "PMS_SESSION_EXPIRING_NOTICE_SECONDS": str(NOTICE_SECONDS),
        "PMS_SESSION_REFRESH_GRACE_SECONDS": "1",
    }


async def test_the_page_renews_its_session_and_stays_live_past_the_first_expiry(
    world_server: tuple[World, ServerProcess], new_page: PageFactory
) -> None:
    world, server = world_server
    tenant = await new_page(PHONE)
    await sign_in(tenant, server, world.tenant.email)
    await expect(tenant.locator("#conn")).to_have_text("Live")
    await tenant.get_by_label("Description").fill("The window does not close")
    await tenant.get_by_role("button", name="File request").click()
    await expect(tenant.locator(".request .status")).to_have_text("Submitted")
    first = await tenant.evaluate("() => JSON.parse(sessionStorage.getItem('pms.session'))")

    # Past the first token's expiry (plus the sweep): a renewed token, still live, same page.
    await tenant.wait_for_function(
        "(expiresAt) => Date.now() > Date.parse(expiresAt) + 2000", arg=first["expiresAt"], timeout=15000
    )
    now = await tenant.evaluate("() => JSON.parse(sessionStorage.getItem('pms.session'))")
    assert now["token"] != first["token"]
    assert now["user"]["id"] == first["user"]["id"]
    await expect(tenant.locator("#conn")).to_have_text("Live")
    assert tenant.url == f"{server.http_url}/requests/"

    token = (await asyncio.to_thread(login, server, world.manager.email))["token"]
    [request_id] = await tenant.locator(".request").evaluate_all("(items) => items.map((item) => item.dataset.id)")
    await asyncio.to_thread(
        call, server, "PATCH", f"/maintenance-requests/{request_id}", token, {"status": "completed"}
    )
    await expect(tenant.locator(".request .status")).to_have_text("Completed")
