"""HTTP endpoints of plans, plan features, features, feature access and usage (mounted by apps/subscriptions/api.py).

Plans and features are read by every authenticated user and written by admins (403
otherwise). Feature access and usage are the caller's own; GET /features/{id}/access
reads `feature:access:{userId}:{featureId}` through (apps/subscriptions/caches.py).
"""

from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from ninja import Query, Router, Status

from apps.accounts.services import Principal
from apps.common.http import token_auth
from apps.common.pagination import Page, PageParams, apaginate, paginate
from apps.subscriptions import caches, selectors, services
from apps.subscriptions.models import Feature, PlanFeature, SubscriptionPlan, UsageRecord
from apps.subscriptions.schemas import (
    FeatureAccessOut,
    FeatureFilters,
    FeatureIn,
    FeatureOut,
    FeaturePatch,
    PlanFeatureOut,
    PlanFeaturesIn,
    PlanFilters,
    PlanIn,
    PlanOut,
    PlanPatch,
    UsageFilters,
    UsageOut,
    money,
)

router = Router(tags=["subscriptions"], auth=token_auth)


def caller_of(request: HttpRequest) -> Principal:
    return request.auth  # type: ignore[attr-defined]


def plan_out(plan: SubscriptionPlan) -> dict[str, Any]:
    return {
        "id": plan.pk,
        "planName": plan.plan_name,
        "planDescription": plan.plan_description,
        "pricePerUnit": money(plan.price_per_unit),
        "minimumPrice": money(plan.minimum_price),
        "maximumUnits": plan.maximum_units,
        "isCustom": bool(plan.is_custom),
        "isActive": plan.is_active is not False,
        "features": plan.features,
        "createdAt": plan.created_at,
        "updatedAt": plan.updated_at,
    }


def plan_feature_out(link: PlanFeature) -> dict[str, Any]:
    return {
        "featureId": link.feature_id,
        "featureName": link.feature.feature_name,
        "featureCategory": link.feature.feature_category,
        "isEnabled": link.is_enabled is not False,
        "usageLimit": link.usage_limit,
    }


def feature_out(feature: Feature) -> dict[str, Any]:
    return {
        "id": feature.pk,
        "featureName": feature.feature_name,
        "featureDescription": feature.feature_description,
        "featureCategory": feature.feature_category,
        "createdAt": feature.created_at,
        "updatedAt": feature.updated_at,
    }


def usage_out(row: UsageRecord) -> dict[str, Any]:
    return {
        "id": row.pk,
        "userId": row.user_id,
        "featureId": row.feature_id,
        "featureName": row.feature.feature_name if row.feature is not None else None,
        "usageCount": row.usage_count or 0,
        "firstUsedAt": row.first_used_at,
        "lastUsedAt": row.last_used_at,
    }


# Plans ----------------------------------------------------------------------------------


@router.get("/subscription-plans", response=Page[PlanOut])
async def list_plans(request: HttpRequest, filters: Query[PlanFilters], page: Query[PageParams]) -> dict[str, Any]:
    """Subscription plans by name; filter by isActive and isCustom."""
    rows = selectors.plan_list(is_active=filters.isActive, is_custom=filters.isCustom)
    return await apaginate(rows, page, plan_out)


@router.post("/subscription-plans", response={201: PlanOut})
async def create_plan(request: HttpRequest, payload: PlanIn) -> Status[dict[str, Any]]:
    """Create a plan (admins only)."""

    def run() -> dict[str, Any]:
        return plan_out(services.plan_create(caller=caller_of(request), data=payload.model_dump()))

    return Status(201, await sync_to_async(run)())


@router.get("/subscription-plans/{plan_id}", response=PlanOut)
async def get_plan(request: HttpRequest, plan_id: UUID) -> dict[str, Any]:
    """One plan."""
    return plan_out(await sync_to_async(selectors.plan_get)(plan_id=plan_id))


@router.patch("/subscription-plans/{plan_id}", response=PlanOut)
async def update_plan(request: HttpRequest, plan_id: UUID, payload: PlanPatch) -> dict[str, Any]:
    """Change a plan (admins only); existing subscriptions keep their price."""

    def run() -> dict[str, Any]:
        data = payload.model_dump(exclude_unset=True)
        return plan_out(services.plan_update(caller=caller_of(request), plan_id=plan_id, data=data))

    return await sync_to_async(run)()


@router.delete("/subscription-plans/{plan_id}", response={204: None})
async def deactivate_plan(request: HttpRequest, plan_id: UUID) -> Status[None]:
    """Deactivate a plan (admins only): no new subscriptions to it; existing ones and history stay."""
    await sync_to_async(services.plan_deactivate)(caller=caller_of(request), plan_id=plan_id)
    return Status(204, None)


@router.get("/subscription-plans/{plan_id}/features", response=list[PlanFeatureOut])
async def list_plan_features(request: HttpRequest, plan_id: UUID) -> list[dict[str, Any]]:
    """The plan's features with their usage limits (null: unlimited), by feature name."""

    def run() -> list[dict[str, Any]]:
        selectors.plan_get(plan_id=plan_id)
        return [plan_feature_out(link) for link in selectors.plan_feature_list(plan_id=plan_id)]

    return await sync_to_async(run)()


@router.put("/subscription-plans/{plan_id}/features", response=list[PlanFeatureOut])
async def set_plan_features(request: HttpRequest, plan_id: UUID, payload: PlanFeaturesIn) -> list[dict[str, Any]]:
    """Replace the plan's features (admins only): rows not listed are removed; 422 for unknown or repeated ids."""

    def run() -> list[dict[str, Any]]:
        rows = [row.model_dump() for row in payload.features]
        links = services.plan_features_set(caller=caller_of(request), plan_id=plan_id, rows=rows)
        return [plan_feature_out(link) for link in links]

    return await sync_to_async(run)()


# Features -------------------------------------------------------------------------------


@router.get("/features", response=Page[FeatureOut])
async def list_features(
    request: HttpRequest, filters: Query[FeatureFilters], page: Query[PageParams]
) -> dict[str, Any]:
    """The feature catalogue by name; filter by category."""
    return await apaginate(selectors.feature_list(category=filters.category), page, feature_out)


@router.post("/features", response={201: FeatureOut})
async def create_feature(request: HttpRequest, payload: FeatureIn) -> Status[dict[str, Any]]:
    """Create a feature (admins only)."""

    def run() -> dict[str, Any]:
        return feature_out(services.feature_create(caller=caller_of(request), data=payload.model_dump()))

    return Status(201, await sync_to_async(run)())


@router.get("/features/{feature_id}", response=FeatureOut)
async def get_feature(request: HttpRequest, feature_id: UUID) -> dict[str, Any]:
    """One feature."""
    return feature_out(await sync_to_async(selectors.feature_get)(feature_id=feature_id))


@router.patch("/features/{feature_id}", response=FeatureOut)
async def update_feature(request: HttpRequest, feature_id: UUID, payload: FeaturePatch) -> dict[str, Any]:
    """Change a feature (admins only)."""

    def run() -> dict[str, Any]:
        data = payload.model_dump(exclude_unset=True)
        return feature_out(services.feature_update(caller=caller_of(request), feature_id=feature_id, data=data))

    return await sync_to_async(run)()


@router.delete("/features/{feature_id}", response={204: None})
async def delete_feature(request: HttpRequest, feature_id: UUID) -> Status[None]:
    """Delete a feature with its plan rows and usage history (admins only)."""
    await sync_to_async(services.feature_delete)(caller=caller_of(request), feature_id=feature_id)
    return Status(204, None)


@router.get("/features/{feature_id}/access", response=FeatureAccessOut)
async def feature_access(request: HttpRequest, feature_id: UUID) -> dict[str, Any]:
    """Whether your current subscription enables the feature, its usage limit (null: unlimited) and your
    usage so far (the `feature:access:{userId}:{featureId}` cache, 15 min)."""
    access = await caches.afeature_access(user_id=caller_of(request).user_id, feature_id=feature_id)
    return {"featureId": feature_id, **access}


@router.post(
    "/features/{feature_id}/usage",
    response=FeatureAccessOut,
    openapi_extra={
        "responses": {
            403: {"description": "The feature is not enabled in your subscription."},
            409: {
                "description": "`conflict`, message `usage limit reached`: "
                "currentUsage has reached usageLimit; nothing recorded."
            },
        }
    },
)
async def record_usage(request: HttpRequest, feature_id: UUID) -> dict[str, Any]:
    """Record one use of the feature and return your access after it. 403 when your plan does not enable it;
    409 `conflict` with message `usage limit reached` (and `usageLimit`, `currentUsage`) when the limit is used up."""
    access = await sync_to_async(services.usage_record)(caller=caller_of(request), feature_id=feature_id)
    return {"featureId": feature_id, **access}


# Usage ----------------------------------------------------------------------------------


@router.get("/usage", response=Page[UsageOut])
async def list_usage(request: HttpRequest, filters: Query[UsageFilters], page: Query[PageParams]) -> dict[str, Any]:
    """Your usage_tracking rows, most recently used first (admins: everyone's; filter userId, featureId)."""

    def run() -> dict[str, Any]:
        rows = selectors.usage_list_visible(
            caller=caller_of(request), user_id=filters.userId, feature_id=filters.featureId
        )
        return paginate(rows, page, usage_out)

    return await sync_to_async(run)()
