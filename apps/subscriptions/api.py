"""HTTP endpoints of subscriptions, the caller's subscription status and pricing recommendations
(mounted at /api/v1 by pms/api.py; plans, features, access and usage: catalog_api.py).

A subscription or recommendation is visible to its user and to admins; any other caller
gets 404. Tenants hold no subscriptions (listing answers them 403). GET /subscriptions/status
reads `subscription:status:{userId}` through (apps/subscriptions/caches.py). Money is a
decimal string, dates ISO 8601; the rules of each write are in apps/subscriptions/services/.
"""

from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from ninja import Body, Query, Router, Status

from apps.accounts.services import Principal
from apps.common.http import token_auth
from apps.common.pagination import Page, PageParams, paginate
from apps.common.visibility import not_found
from apps.subscriptions import caches, selectors, services
from apps.subscriptions.catalog_api import router as catalog_router
from apps.subscriptions.models import PricingRecommendation, Subscription
from apps.subscriptions.schemas import (
    CancelIn,
    RecommendationAppliedOut,
    RecommendationFilters,
    RecommendationIn,
    RecommendationOut,
    SubscriptionFilters,
    SubscriptionIn,
    SubscriptionOut,
    SubscriptionPatch,
    SubscriptionStatusOut,
    money,
)

router = Router(tags=["subscriptions"], auth=token_auth)


def caller_of(request: HttpRequest) -> Principal:
    return request.auth  # type: ignore[attr-defined]


def subscription_out(subscription: Subscription) -> dict[str, Any]:
    plan = subscription.plan
    return {
        "id": subscription.pk,
        "userId": subscription.user_id,
        "planId": subscription.plan_id,
        "planName": plan.plan_name if plan is not None else None,
        "status": subscription.status,
        "paymentFrequency": subscription.payment_frequency,
        "unitCount": subscription.unit_count,
        "currentPrice": money(subscription.current_price),
        "startDate": subscription.start_date,
        "endDate": subscription.end_date,
        "isAutoRenew": subscription.is_auto_renew is not False,
        "cancelledAt": subscription.cancelled_at,
        "cancellationReason": subscription.cancellation_reason,
        "createdAt": subscription.created_at,
        "updatedAt": subscription.updated_at,
    }


def recommendation_out(rec: PricingRecommendation) -> dict[str, Any]:
    return {
        "id": rec.pk,
        "userId": rec.user_id,
        "currentPlanId": rec.current_plan_id,
        "recommendedPlanId": rec.recommended_plan_id,
        "recommendationReason": rec.recommendation_reason,
        "estimatedSavings": money(rec.estimated_savings),
        "createdAt": rec.created_at,
        "expiresAt": rec.expires_at,
        "isApplied": bool(rec.is_applied),
        "appliedAt": rec.applied_at,
    }


# Subscriptions --------------------------------------------------------------------------
# /subscriptions/status is declared before /subscriptions/{subscription_id} so it is matched first.


@router.get("/subscriptions/status", response=SubscriptionStatusOut)
async def subscription_status(request: HttpRequest) -> dict[str, Any]:
    """Your current (active or trial) subscription (the `subscription:status:{userId}` cache, 1 h);
    404 `not_found` when you have none."""
    status = await caches.asubscription_status(user_id=caller_of(request).user_id)
    if status is None:
        raise not_found()
    return status


@router.get("/subscriptions", response=Page[SubscriptionOut])
async def list_subscriptions(
    request: HttpRequest, filters: Query[SubscriptionFilters], page: Query[PageParams]
) -> dict[str, Any]:
    """Your subscriptions (admins: everyone's), newest start first; filter by userId, status, start and end
    date ranges. Tenants: 403."""

    def run() -> dict[str, Any]:
        rows = selectors.subscription_list_visible(
            caller=caller_of(request),
            user_id=filters.userId,
            status=filters.status,
            start_from=filters.startFrom,
            start_to=filters.startTo,
            end_from=filters.endFrom,
            end_to=filters.endTo,
        )
        return paginate(rows, page, subscription_out)

    return await sync_to_async(run)()


@router.post("/subscriptions", response={201: SubscriptionOut})
async def create_subscription(request: HttpRequest, payload: SubscriptionIn) -> Status[dict[str, Any]]:
    """Subscribe yourself (landlords, property managers) or a landlord or manager (admins) to an active plan.
    The price is max(minimumPrice, pricePerUnit * unitCount) unless an admin sets it; 409 when the user
    already has an active or trial subscription."""

    def run() -> dict[str, Any]:
        return subscription_out(services.subscription_create(caller=caller_of(request), data=payload.model_dump()))

    return Status(201, await sync_to_async(run)())


@router.get("/subscriptions/{subscription_id}", response=SubscriptionOut)
async def get_subscription(request: HttpRequest, subscription_id: UUID) -> dict[str, Any]:
    """One of your subscriptions (admins: any)."""

    def run() -> dict[str, Any]:
        found = selectors.access_subscription(caller=caller_of(request), subscription_id=subscription_id)
        return subscription_out(found)

    return await sync_to_async(run)()


@router.patch("/subscriptions/{subscription_id}", response=SubscriptionOut)
async def update_subscription(
    request: HttpRequest, subscription_id: UUID, payload: SubscriptionPatch
) -> dict[str, Any]:
    """Change a subscription: owners planId, unitCount, paymentFrequency, isAutoRenew of a current one
    (409 otherwise); admins also status, dates and currentPrice. A new plan or unit count recomputes the price."""

    def run() -> dict[str, Any]:
        caller = caller_of(request)
        found = selectors.access_subscription(caller=caller, subscription_id=subscription_id)
        services.subscription_update(caller=caller, subscription=found, data=payload.model_dump(exclude_unset=True))
        return subscription_out(selectors.access_subscription(caller=caller, subscription_id=subscription_id))

    return await sync_to_async(run)()


@router.post("/subscriptions/{subscription_id}/cancel", response=SubscriptionOut)
async def cancel_subscription(
    request: HttpRequest, subscription_id: UUID, payload: Body[CancelIn | None] = None
) -> dict[str, Any]:
    """Cancel a subscription (its owner or an admin): status `cancelled`, `cancelledAt` now, the reason kept,
    auto-renewal off. The body (`{"reason": ...}`) may be left out. 409 when it is already cancelled or expired."""

    def run() -> dict[str, Any]:
        caller = caller_of(request)
        found = selectors.access_subscription(caller=caller, subscription_id=subscription_id)
        reason = payload.reason if payload is not None else None
        return subscription_out(services.subscription_cancel(caller=caller, subscription=found, reason=reason))

    return await sync_to_async(run)()


# Pricing recommendations ----------------------------------------------------------------


@router.get("/pricing-recommendations", response=Page[RecommendationOut])
async def list_recommendations(
    request: HttpRequest, filters: Query[RecommendationFilters], page: Query[PageParams]
) -> dict[str, Any]:
    """Your pricing recommendations (admins: everyone's), newest first; filter by userId and isApplied."""

    def run() -> dict[str, Any]:
        rows = selectors.recommendation_list_visible(
            caller=caller_of(request), user_id=filters.userId, is_applied=filters.isApplied
        )
        return paginate(rows, page, recommendation_out)

    return await sync_to_async(run)()


@router.post("/pricing-recommendations", response={201: RecommendationOut})
async def create_recommendation(request: HttpRequest, payload: RecommendationIn) -> Status[dict[str, Any]]:
    """Recommend a plan to a user (admins only)."""

    def run() -> dict[str, Any]:
        return recommendation_out(services.recommendation_create(caller=caller_of(request), data=payload.model_dump()))

    return Status(201, await sync_to_async(run)())


@router.get("/pricing-recommendations/{recommendation_id}", response=RecommendationOut)
async def get_recommendation(request: HttpRequest, recommendation_id: UUID) -> dict[str, Any]:
    """One of your recommendations (admins: any)."""

    def run() -> dict[str, Any]:
        caller = caller_of(request)
        return recommendation_out(selectors.access_recommendation(caller=caller, recommendation_id=recommendation_id))

    return await sync_to_async(run)()


@router.post("/pricing-recommendations/{recommendation_id}/apply", response=RecommendationAppliedOut)
async def apply_recommendation(request: HttpRequest, recommendation_id: UUID) -> dict[str, Any]:
    """Apply a recommendation made for you: your current subscription moves to the recommended plan at its
    price. 403 for someone else's (admins included); 409 when applied already, expired, without a current
    subscription, or when the plan is inactive or too small for your units."""

    def run() -> dict[str, Any]:
        caller = caller_of(request)
        found = selectors.access_recommendation(caller=caller, recommendation_id=recommendation_id)
        applied, subscription = services.recommendation_apply(caller=caller, recommendation=found)
        subscription = selectors.access_subscription(caller=caller, subscription_id=subscription.pk)
        return {"recommendation": recommendation_out(applied), "subscription": subscription_out(subscription)}

    return await sync_to_async(run)()


router.add_router("", catalog_router)
