"""HTTP endpoints of system messaging: admins send broadcasts to every connected user."""

from typing import Annotated, Literal

from django.http import HttpRequest
from ninja import Router, Schema, Status
from pydantic import StringConstraints

from apps.accounts.services import Principal
from apps.common import policy
from apps.common.http import token_auth
from apps.messaging.services import DEFAULT_PRIORITY, MESSAGE_MAX_LENGTH, TITLE_MAX_LENGTH, abroadcast_send

router = Router(tags=["system"])

ADMINS_ONLY = "Only admins may send system broadcasts."


class BroadcastIn(Schema):
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX_LENGTH)]
    message: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MESSAGE_MAX_LENGTH)]
    priority: Literal["low", "medium", "high"] = DEFAULT_PRIORITY


class BroadcastOut(Schema):
    id: str
    title: str
    message: str
    priority: str
    sentBy: str
    sentAt: str
    offset: str


@router.post("/broadcasts", response={201: BroadcastOut}, auth=token_auth)
async def broadcast_send(request: HttpRequest, payload: BroadcastIn) -> Status:
    """Send a `broadcast` event on `system:broadcasts` (admins only); returns its data and offset."""
    principal: Principal = request.auth  # type: ignore[attr-defined]
    policy.require(principal, policy.FAMILIES["broadcasts"]["send"], ADMINS_ONLY)
    frame = await abroadcast_send(
        sender_id=principal.user_id, title=payload.title, message=payload.message, priority=payload.priority
    )
    return Status(201, {**frame["data"], "offset": frame["offset"]})
