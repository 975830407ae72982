"""Browser fixtures: Playwright for Python driving Debian's `chromium` (never Playwright's own
download, which cannot work on these machines) against real uvicorn processes from the e2e
fixtures. `scripts/test` installs the `chromium` package when it is missing.

The tests are async (Playwright's async API) so that the database set-up, done by sync
fixtures before them, never runs inside Playwright's event loop."""

import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright

from tests.apps.api_world import World, build_world
from tests.e2e.conftest import (  # noqa: F401  (fixtures used by the browser tests)
    ROOT,
    UVICORN_ARGS,
    ServerFactory,
    ServerProcess,
    _wait_healthy,
    fast_password_hashing,
    server_env,
    start_servers,
)

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
SCREENSHOTS = ROOT / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
PageFactory = Callable[..., Awaitable[Page]]


@pytest.fixture
def world_server(start_servers: ServerFactory) -> tuple[World, ServerProcess]:  # noqa: F811  (the imported fixture)
    """The api_world (landlord, manager, tenant with an active lease...) committed, one uvicorn."""
    world = build_world()
    [server] = start_servers(1)
    return world, server


@pytest.fixture
def world_two_servers(start_servers: ServerFactory) -> tuple[World, ServerProcess, ServerProcess]:  # noqa: F811
    """The api_world committed and two uvicorn processes sharing the stores (one may be killed)."""
    world = build_world()
    first, second = start_servers(2)
    return world, first, second


@pytest.fixture
async def new_page() -> AsyncIterator[PageFactory]:
    """`await new_page(viewport=DESKTOP)`: a page in a browser context of its own (own sessionStorage)."""
    executable = shutil.which("chromium")
    assert executable, (
        "Debian's chromium is not on the PATH: `apt-get install -y chromium` (scripts/test does it as root)"
    )
    contexts: list[BrowserContext] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)

        async def open_page(viewport: dict[str, int] = DESKTOP) -> Page:
            context = await browser.new_context(viewport=viewport)  # type: ignore[arg-type]
            context.set_default_timeout(5000)
            contexts.append(context)
            return await context.new_page()

        yield open_page
        for context in contexts:
            await context.close()
        await browser.close()


def screenshot_path(name: str, tmp_path: Path, keep: bool) -> Path:
    """docs/screenshots/<name> when `keep` (PMS_SCREENSHOTS=1), else the test's tmp dir."""
    if keep:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS / name
    return tmp_path / name


@pytest.fixture
def restart_server(server_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[ServerProcess], ServerProcess]]:  # noqa: F811
    """`restart_server(server)`: a new uvicorn on the same port as `server` (which must be down),
    healthy on return (as a crashed process coming back); stopped at teardown."""
    restarted: list[ServerProcess] = []

    def restart(server: ServerProcess) -> ServerProcess:
        assert server.process.poll() is not None, "stop or kill the server first"
        log_path = tmp_path / f"uvicorn-{server.port}-restarted-{len(restarted) + 1}.log"
        args = [sys.executable, "-m", "uvicorn", "pms.asgi:application", "--host", "127.0.0.1"]
        args += ["--port", str(server.port), *UVICORN_ARGS]
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603
                args, cwd=ROOT, env=server_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        again = ServerProcess(f"{server.name}-restarted", server.port, process, log_path)
        restarted.append(again)
        _wait_healthy(again)
        return again

    yield restart
    for server in restarted:
        server.stop()
        print(f"----- {server.name} (exit {server.process.returncode}) -----\n{server.logs()}")
