"""Sessions ending under an open page, in a real browser against a real uvicorn process: a sign-out
revokes only that session; a session revoked elsewhere (a password reset by an admin) closes the
open page's socket with 4409 and sends it to sign-in with the "signed out" message, and its
token answers 401 over HTTP."""

import asyncio
import urllib.error

import pytest
from playwright.async_api import expect

from tests.apps.api_world import World
from tests.e2e.conftest import ServerProcess, login
from tests.e2e.test_notifications import call
from tests.web.conftest import DESKTOP, PHONE, PageFactory
from tests.web.test_bell import new_page, patient_expect, token_of  # noqa: F401  (fixtures)
from tests.web.test_pages import sign_in

pytestmark = pytest.mark.django_db(transaction=True)

REVOKED_MESSAGE = "You were signed out (on another device or by an administrator). Please sign in again."


async def test_signing_out_on_one_device_leaves_the_other_signed_in(
    world_server: tuple[World, ServerProcess],
    new_page: PageFactory,  # noqa: F811  (the fixture imported from test_bell)
) -> None:
    world, server = world_server
    phone = await new_page(PHONE)
    await sign_in(phone, server, world.tenant.email)
    await expect(phone.locator("#conn")).to_have_text("Live")
    laptop = await new_page(DESKTOP)
    await sign_in(laptop, server, world.tenant.email)
    await expect(laptop.locator("#conn")).to_have_text("Live")
    phone_token = await token_of(phone)

    await phone.get_by_role("button", name="Sign out").click()
    await expect(phone).to_have_url(f"{server.http_url}/")
    with pytest.raises(urllib.error.HTTPError) as refused:
        await asyncio.to_thread(call, server, "GET", "/auth/me", phone_token)
    assert refused.value.code == 401
    # The other device's session is its own: still live, still answered.
    me = await asyncio.to_thread(call, server, "GET", "/auth/me", await token_of(laptop))
    assert me["user"]["email"] == world.tenant.email
    await expect(laptop.locator("#conn")).to_have_text("Live")


async def test_a_session_revoked_elsewhere_sends_the_open_page_to_sign_in_with_a_message(
    world_server: tuple[World, ServerProcess],
    new_page: PageFactory,  # noqa: F811  (the fixture imported from test_bell)
) -> None:
    world, server = world_server
    page = await new_page(PHONE)
    await sign_in(page, server, world.tenant.email)
    await expect(page).to_have_url(f"{server.http_url}/requests/")
    await page.goto(f"{server.http_url}/account/")
    await expect(page.locator("#conn")).to_have_text("Live")
    token = await token_of(page)

    # An admin resets the tenant's password: every session of the user ends (sockets close 4409).
    admin = (await asyncio.to_thread(login, server, world.admin.email))["token"]
    await asyncio.to_thread(
        call, server, "PATCH", f"/users/{world.tenant.pk}", admin, {"password": "a-new-password-2026"}
    )
    await expect(page).to_have_url(f"{server.http_url}/?revoked=1")
    await expect(page.get_by_role("alert")).to_have_text(REVOKED_MESSAGE)
    assert await page.evaluate("() => sessionStorage.getItem('pms.session')") is None
    with pytest.raises(urllib.error.HTTPError) as refused:
        await asyncio.to_thread(call, server, "GET", "/auth/me", token)
    assert refused.value.code == 401
