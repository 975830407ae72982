"""Admin-only HTTP endpoints of AI training data and models (MongoDB `ai_training_data`, `ai_models`)."""

from typing import Any

from django.http import HttpRequest
from ninja import Path, Query, Router, Status

from apps.accounts.services import Principal
from apps.common import policy
from apps.common.http import token_auth
from apps.common.pagination import PageParams
from apps.documents import ai
from apps.documents.schemas import (
    ModelFilters,
    ModelIn,
    ModelOut,
    ModelPage,
    TrainingDataFilters,
    TrainingDataIn,
    TrainingDataOut,
    TrainingDataPage,
)
from apps.documents.stored import OBJECT_ID_PATTERN, object_id

router = Router(tags=["ai"], auth=token_auth)

ADMINS_ONLY = "AI data and models are for admins only."
MONGO_ID = Path(..., pattern=OBJECT_ID_PATTERN, description="24 hexadecimal characters.")


def admin_of(request: HttpRequest) -> Principal:
    """The caller, who must be an admin (403 otherwise: the endpoints exist for everyone to see)."""
    caller: Principal = request.auth  # type: ignore[attr-defined]
    policy.require(caller, policy.FAMILIES["admin"]["access"], ADMINS_ONLY)
    return caller


@router.post("/ai/training-data", response={201: TrainingDataOut})
async def create_training_data(request: HttpRequest, payload: TrainingDataIn) -> Status[dict[str, Any]]:
    """Add a training example (not validated yet)."""
    admin_of(request)
    doc = await ai.training_data_create(data=payload.model_dump())
    return Status(201, ai.training_data_out(doc))


@router.get("/ai/training-data", response=TrainingDataPage)
async def list_training_data(
    request: HttpRequest, filters: Query[TrainingDataFilters], page: Query[PageParams]
) -> dict[str, Any]:
    """Training examples, newest first; filter by dataType and isValidated."""
    admin_of(request)
    return await ai.training_data_list(
        data_type=filters.dataType, is_validated=filters.isValidated, limit=page.limit, offset=page.offset
    )


@router.post("/ai/training-data/{data_id}/validate", response=TrainingDataOut)
async def validate_training_data(request: HttpRequest, data_id: str = MONGO_ID) -> dict[str, Any]:
    """Mark an example validated by you."""
    caller = admin_of(request)
    return ai.training_data_out(await ai.training_data_validate(caller=caller, data_id=object_id(data_id)))


@router.post("/ai/models", response={201: ModelOut})
async def create_model(request: HttpRequest, payload: ModelIn) -> Status[dict[str, Any]]:
    """Register a model version (409 if the version exists); `isActive: true` deactivates its other versions."""
    caller = admin_of(request)
    doc = await ai.model_create(caller=caller, data=payload.model_dump())
    return Status(201, ai.model_out(doc))


@router.get("/ai/models", response=ModelPage)
async def list_models(request: HttpRequest, filters: Query[ModelFilters], page: Query[PageParams]) -> dict[str, Any]:
    """Model versions, newest first; filter by modelName, modelType, isActive."""
    admin_of(request)
    return await ai.model_list(
        model_name=filters.modelName,
        model_type=filters.modelType,
        is_active=filters.isActive,
        limit=page.limit,
        offset=page.offset,
    )


@router.post("/ai/models/{model_id}/activate", response=ModelOut)
async def activate_model(request: HttpRequest, model_id: str = MONGO_ID) -> dict[str, Any]:
    """Make this version the active one of its model (the other versions are deactivated)."""
    admin_of(request)
    return ai.model_out(await ai.model_activate(model_id=object_id(model_id)))
