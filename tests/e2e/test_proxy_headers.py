"""`X-Forwarded-For` is honoured only when PMS_TRUST_X_FORWARDED_FOR says so (issue #15), checked on
the production command line (`python -m pms.server`, as scripts/serve, the Dockerfile and compose
start it): uvicorn on its own trusts proxy headers from 127.0.0.1, so a spoofed header let a local
client pick a new address for every attempt and dodge the per-address login limit."""

import json
import urllib.error
import urllib.request

from pms.server import proxy_options
from tests.e2e.conftest import WAIT, ServerProcess, StartServer
from tests.factories import make_user

LOGIN_LIMIT = 5  # the protocol's default: 5 failures per address per 10 minutes


def failed_login(server: ServerProcess, email: str, forwarded_for: str) -> int:
    """The status of a login with a wrong password sent with `X-Forwarded-For: forwarded_for`."""
    request = urllib.request.Request(  # noqa: S310
        f"{server.http_url}/api/v1/auth/login",
        data=json.dumps({"email": email, "password": "wrong"}).encode(),
        headers={"Content-Type": "application/json", "X-Forwarded-For": forwarded_for},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_the_server_is_told_to_trust_no_proxy_unless_configured() -> None:
    assert proxy_options({}) == ["--forwarded-allow-ips", ""]
    assert proxy_options({"PMS_TRUST_X_FORWARDED_FOR": "0"}) == ["--forwarded-allow-ips", ""]
    assert proxy_options({"PMS_TRUST_X_FORWARDED_FOR": "1"}) == ["--forwarded-allow-ips", "127.0.0.1"]
    assert proxy_options({"PMS_TRUST_X_FORWARDED_FOR": "true", "PMS_FORWARDED_ALLOW_IPS": "10.0.0.2"}) == [
        "--forwarded-allow-ips",
        "10.0.0.2",
    ]


def test_a_spoofed_forwarded_for_cannot_dodge_the_login_limit(start_production_server: StartServer) -> None:
    user = make_user()
    server = start_production_server(PMS_TRUST_X_FORWARDED_FOR="0")
    statuses = [failed_login(server, user.email, f"203.0.113.{index}") for index in range(LOGIN_LIMIT + 1)]
    # Every attempt counts against the one real address (127.0.0.1): the sixth is refused.
    assert statuses == [401] * LOGIN_LIMIT + [429]


def test_behind_a_trusted_proxy_each_client_address_has_its_own_limit(start_production_server: StartServer) -> None:
    user = make_user()
    server = start_production_server(PMS_TRUST_X_FORWARDED_FOR="1")
    # The proxy (this test, at 127.0.0.1) appends the address it saw; what the client put first is ignored.
    statuses = [failed_login(server, user.email, f"198.51.100.{i}, 203.0.113.7") for i in range(LOGIN_LIMIT + 1)]
    assert statuses == [401] * LOGIN_LIMIT + [429]
    assert failed_login(server, user.email, "203.0.113.8") == 401  # another client behind the proxy
