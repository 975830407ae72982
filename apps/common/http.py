"""HTTP authentication shared by every app's API: the bearer token and the caller's address."""

from django.conf import settings
from django.http import HttpRequest
from ninja.security import HttpBearer

from apps.accounts.services import Principal, aapi_rate_limit, asession_authenticate
from realtime.errors import ProtocolError


class TokenAuth(HttpBearer):
    """`Authorization: Bearer <sessionId>.<secret>`; answers 401 `unauthorized` otherwise."""

    async def __call__(self, request: HttpRequest) -> Principal | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            principal = await asession_authenticate(token)
        except ProtocolError:
            return None
        await aapi_rate_limit(principal, request)
        return principal

    def authenticate(self, request: HttpRequest, token: str) -> Principal | None:  # pragma: no cover
        raise NotImplementedError("TokenAuth is async; __call__ does the work")


token_auth = TokenAuth()


def client_ip(request: HttpRequest) -> str:
    """The caller's address: the peer's, or with PMS_TRUST_X_FORWARDED_FOR the last
    `X-Forwarded-For` entry, the one the trusted proxy appended.

    Earlier entries are whatever the client sent (a proxy appends, it does not replace), so
    the first one would let a client choose its own address. With the setting off the header
    is ignored, and the server must not rewrite the peer address from it either (pms/server.py
    gives uvicorn `--forwarded-allow-ips ""`).
    """
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.headers.get("X-Forwarded-For", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last[:45]
    return str(request.META.get("REMOTE_ADDR") or "unknown")[:45]
