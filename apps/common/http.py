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
    """The caller's address; X-Forwarded-For only when a trusted proxy sets it."""
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.headers.get("X-Forwarded-For", "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first[:45]
    return str(request.META.get("REMOTE_ADDR") or "unknown")[:45]
