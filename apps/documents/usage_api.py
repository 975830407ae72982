"""HTTP endpoints of `usage_patterns`: admins read everyone's, a user their own; apps report feature use.

Counts appear after the next flush (within USAGE_FLUSH_SECONDS): recording never waits for MongoDB.
"""

from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Status
from pymongo import DESCENDING

from apps.accounts.services import Principal
from apps.common import policy
from apps.common.http import token_auth
from apps.common.pagination import PageParams
from apps.documents.schemas import AcceptedOut, FeatureUseIn, UsageFilters, UsagePatternPage
from apps.documents.services import mongo_errors
from apps.documents.stored import stored_time
from apps.documents.usage import get_recorder
from realtime.connections import current_settings, get_mongo
from realtime.documents import USAGE_PATTERNS

router = Router(tags=["usage patterns"], auth=token_auth)

ADMINS_ONLY = "Only admins may read other users' usage patterns."


def caller_of(request: HttpRequest) -> Principal:
    return request.auth  # type: ignore[attr-defined]


def usage_pattern_out(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored usage document as the API shows it (aware dates on any server)."""
    return {
        "id": str(doc["_id"]),
        "userId": doc.get("userId"),
        "sessionId": doc.get("sessionId"),
        "features": [
            {
                "featureId": item.get("featureId"),
                "usageCount": int(item.get("usageCount") or 0),
                "lastUsed": stored_time(item.get("lastUsed")),
                "usageDuration": item.get("usageDuration"),
                "actions": [
                    {
                        "actionType": action.get("actionType"),
                        "timestamp": stored_time(action.get("timestamp")),
                        "metadata": action.get("metadata"),
                    }
                    for action in item.get("actions") or []
                ],
            }
            for item in doc.get("features") or []
        ],
        "pageViews": [
            {
                "page": view.get("page"),
                "viewCount": int(view.get("viewCount") or 0),
                "lastViewed": stored_time(view.get("lastViewed")),
                "averageDuration": view.get("averageDuration"),
            }
            for view in doc.get("pageViews") or []
        ],
        "loginHistory": [
            {
                "timestamp": stored_time(login.get("timestamp")),
                "ipAddress": login.get("ipAddress"),
                "userAgent": login.get("userAgent"),
                "duration": login.get("duration"),
            }
            for login in doc.get("loginHistory") or []
        ],
        "createdAt": stored_time(doc.get("createdAt")),
        "updatedAt": stored_time(doc.get("updatedAt")),
    }


async def _page(query: dict[str, Any], page: PageParams) -> dict[str, Any]:
    collection = get_mongo()[current_settings().mongo_database][USAGE_PATTERNS]
    with mongo_errors():
        count = await collection.count_documents(query)
        cursor = collection.find(query).sort([("updatedAt", DESCENDING), ("_id", DESCENDING)])
        rows = await cursor.skip(page.offset).limit(page.limit).to_list(length=page.limit)
    following = page.offset + len(rows)
    return {
        "items": [usage_pattern_out(row) for row in rows],
        "count": count,
        "limit": page.limit,
        "offset": page.offset,
        "nextOffset": following if following < count else None,
    }


@router.get("/usage-patterns", response=UsagePatternPage)
async def list_usage_patterns(
    request: HttpRequest, filters: Query[UsageFilters], page: Query[PageParams]
) -> dict[str, Any]:
    """Every user's usage per session, most recently active first (admins only); filter by user or session."""
    policy.require(caller_of(request), policy.FAMILIES["admin"]["access"], ADMINS_ONLY)
    query = {key: value for key, value in (("userId", filters.userId), ("sessionId", filters.sessionId)) if value}
    return await _page(query, page)


@router.get("/usage-patterns/me", response=UsagePatternPage)
async def my_usage_patterns(request: HttpRequest, page: Query[PageParams]) -> dict[str, Any]:
    """Your own usage, one entry per session, most recently active first."""
    return await _page({"userId": caller_of(request).user_id}, page)


@router.post("/usage-patterns/me/features", response={202: AcceptedOut})
async def record_feature_use(request: HttpRequest, payload: FeatureUseIn) -> Status[dict[str, bool]]:
    """Report one use of a feature in this session (buffered; written with the next flush)."""
    caller = caller_of(request)
    recorder = get_recorder()
    recorder.record_feature(
        user_id=caller.user_id,
        session_id=caller.session_id,
        feature_id=str(payload.featureId),
        action_type=payload.actionType,
        duration_seconds=payload.durationSeconds,
        metadata=payload.metadata,
    )
    return Status(202, {"accepted": True})
