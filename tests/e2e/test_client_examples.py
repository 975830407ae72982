"""The client examples of docs/protocol.md, run for real: uvicorn in a subprocess, each example a subprocess.

The server is the one `pms.devstack serve` runs (same uvicorn flags) on the pytest-django test
database, the test Redis DB and MongoDB `pms_test`, so the examples log in over HTTP and talk
to `/ws/` exactly as a client developer's copy would.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.db import connection

from pms.server import UVICORN_OPTIONS, ws_options
from tests.conftest import TEST_MONGO_DATABASE
from tests.factories import DEFAULT_PASSWORD, make_conversation, make_user

ROOT = Path(__file__).resolve().parents[2]
PYTHON_EXAMPLE = ROOT / "examples" / "python_client.py"
JS_EXAMPLE = ROOT / "examples" / "js_client.mjs"
RUN_SECONDS = "3"
# The server checks passwords with its own default hashers, not the tests' fast MD5 one.
SERVER_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _database_url() -> str:
    """The pytest-django test database as a `PMS_DATABASE_URL` (dj-database-url syntax)."""
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = quote(db["HOST"] or "", safe="")  # a Unix socket directory is percent-encoded
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{auth}@{host}{port}/{quote(db['NAME'], safe='')}"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def server(transactional_db: Any, settings: Any) -> Iterator[str]:
    """A real uvicorn process on the test stores; its base URL. Stopped before the database is flushed."""
    settings.PASSWORD_HASHERS = SERVER_HASHERS
    port = _free_port()
    env = {
        **os.environ,
        "PMS_DEBUG": "1",
        "PMS_DATABASE_URL": _database_url(),
        "PMS_REDIS_URL": django_settings.REDIS_URL,
        "PMS_MONGO_URL": django_settings.MONGO_URL,
        "PMS_MONGO_DATABASE": TEST_MONGO_DATABASE,
        "DJANGO_SETTINGS_MODULE": "pms.settings",
        # Every session is "expiring" from the first housekeeping round: the examples renew theirs.
        "PMS_HOUSEKEEPING_SECONDS": "0.5",
        "PMS_SESSION_EXPIRING_NOTICE_SECONDS": str(2 * 24 * 3600),
    }
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "pms.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *UVICORN_OPTIONS,  # the production flags (pms/server.py)
        *ws_options({}),
    ]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while not _answers(f"http://127.0.0.1:{port}/healthz"):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"uvicorn did not come up:\n{log.read().decode(errors='replace')}")
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _run(args: list[str]) -> str:
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=30)
    output = f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    print(output)
    assert result.returncode == 0, output
    return result.stdout


def _people() -> tuple[Any, Any, str]:
    tenant = make_user(user_type="tenant")
    manager = make_user(user_type="property_manager")
    conversation = make_conversation(participants=(tenant, manager))
    return tenant, manager, str(conversation.pk)


def _node_with_websocket() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("`node` is not installed: the JavaScript example needs Node.js 20.10+")
    probe = subprocess.run(
        [node, "--experimental-websocket", "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 3)"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
        pytest.skip(f"node {version} has no global WebSocket (needs Node.js 20.10+ with --experimental-websocket)")
    return node


def test_python_example_sends_and_receives(server: str) -> None:
    tenant, _manager, conversation = _people()
    out = _run(
        [
            sys.executable,
            str(PYTHON_EXAMPLE),
            "--url",
            server,
            "--email",
            tenant.email,
            "--password",
            DEFAULT_PASSWORD,
            "--conversation",
            conversation,
            "--message",
            "hello from python",
            "--seconds",
            RUN_SECONDS,
        ]
    )
    assert f"subscribed notifications:{tenant.pk}" in out, out
    assert f"subscribed chat:messages:{conversation}" in out, out
    assert "reply chat.send ok: stored message " in out and ": hello from python" in out, out
    assert f"event chat.message on chat:messages:{conversation}: hello from python" in out, out
    assert "session renewed until " in out, out


def test_js_example_sends_and_receives(server: str) -> None:
    node = _node_with_websocket()
    _tenant, manager, conversation = _people()
    out = _run(
        [
            node,
            "--experimental-websocket",
            str(JS_EXAMPLE),
            "--url",
            server,
            "--email",
            manager.email,
            "--password",
            DEFAULT_PASSWORD,
            "--conversation",
            conversation,
            "--message",
            "hello from javascript",
            "--seconds",
            RUN_SECONDS,
        ]
    )
    assert f"subscribed notifications:{manager.pk}" in out, out
    assert f"subscribed chat:messages:{conversation}" in out, out
    assert "reply chat.send ok: stored message " in out and ": hello from javascript" in out, out
    assert f"event chat.message on chat:messages:{conversation}: hello from javascript" in out, out
    assert "session renewed until " in out, out
