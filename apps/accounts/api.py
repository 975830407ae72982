"""HTTP endpoints of authentication: login, refresh, logout, me."""

from datetime import datetime

from django.http import HttpRequest
from ninja import Router, Schema, Status
from pydantic import Field

from apps.accounts.services import (
    Principal,
    apermissions_get,
    asession_login,
    asession_refresh,
    asession_revoke,
)
from apps.common.http import client_ip, token_auth

router = Router(tags=["auth"])


class LoginIn(Schema):
    email: str = Field(min_length=3, max_length=255)
    password: str = Field(min_length=1, max_length=1024)


class SessionUserOut(Schema):
    """The caller as their session knows them (not `UserOut` of /users: OpenAPI names must be unique)."""

    id: str
    email: str
    firstName: str
    lastName: str
    userType: str
    roles: list[str]


class LoginTokenOut(Schema):
    token: str
    sessionId: str
    expiresAt: datetime
    user: SessionUserOut


class MeOut(Schema):
    user: SessionUserOut
    sessionId: str
    expiresAt: datetime
    permissions: list[str]


def _user_out(principal: Principal) -> SessionUserOut:
    return SessionUserOut(
        id=principal.user_id,
        email=principal.email,
        firstName=principal.first_name,
        lastName=principal.last_name,
        userType=principal.user_type,
        roles=list(principal.roles),
    )


@router.post("/login", response=LoginTokenOut, auth=None)
async def login(request: HttpRequest, payload: LoginIn) -> LoginTokenOut:
    """Exchange an email and password for a session token (24 h by default)."""
    principal, token = await asession_login(
        email=payload.email,
        password=payload.password,
        ip=client_ip(request),
        user_agent=request.headers.get("User-Agent"),
    )
    return LoginTokenOut(
        token=token, sessionId=principal.session_id, expiresAt=principal.expires_at, user=_user_out(principal)
    )


@router.post("/refresh", response=LoginTokenOut, auth=token_auth)
async def refresh(request: HttpRequest) -> LoginTokenOut:
    """Rotate the calling session: a new token with a fresh expiry (same shape as login).

    The old token keeps working for a short grace (`PMS_SESSION_REFRESH_GRACE_SECONDS`,
    60 s by default) so requests already in flight do not fail, then answers 401. Hand the
    new token to open sockets with `{"type": "auth.refresh", "token": ...}`.
    """
    principal: Principal = request.auth  # type: ignore[attr-defined]
    renewed, token = await asession_refresh(
        principal=principal, ip=client_ip(request), user_agent=request.headers.get("User-Agent")
    )
    return LoginTokenOut(
        token=token, sessionId=renewed.session_id, expiresAt=renewed.expires_at, user=_user_out(renewed)
    )


@router.post("/logout", response={204: None}, auth=token_auth)
async def logout(request: HttpRequest) -> Status:
    """Revoke the calling session on every server process at once."""
    principal: Principal = request.auth  # type: ignore[attr-defined]
    await asession_revoke(session_id=principal.session_id)
    return Status(204, None)


@router.get("/me", response=MeOut, auth=token_auth)
async def me(request: HttpRequest) -> MeOut:
    """The calling user, their session and their permissions."""
    principal: Principal = request.auth  # type: ignore[attr-defined]
    permissions = await apermissions_get(principal)
    return MeOut(
        user=_user_out(principal),
        sessionId=principal.session_id,
        expiresAt=principal.expires_at,
        permissions=sorted(permissions),
    )
