"""Request and response schemas of the subscriptions API (camelCase on the wire, money as decimal strings)."""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from ninja import Schema
from pydantic import AfterValidator, ConfigDict, Field

from apps.common.schemas import NO_NUL, Timestamp, text

INT4_MAX = 2_147_483_647

# The seed's DECIMAL(10,2).
MoneyIn = Annotated[Decimal, Field(ge=0, max_digits=10, decimal_places=2)]
SignedMoneyIn = Annotated[Decimal, Field(max_digits=10, decimal_places=2)]
Count = Annotated[int, Field(ge=0, le=INT4_MAX)]
PositiveCount = Annotated[int, Field(ge=1, le=INT4_MAX)]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def _no_nul_in_json(value: Any) -> Any:
    # JSONB cannot store \u0000 anywhere (keys or strings): a 422 here instead of a database error.
    if _has_nul(value):
        raise ValueError("must not contain NUL characters")
    return value


Json = dict[str, Any] | list[Any]
JsonIn = Annotated[Json | None, AfterValidator(_no_nul_in_json)]
MONEY = "Decimal as a string with two places."

StatusName = Literal["active", "cancelled", "expired", "trial"]
FrequencyName = Literal["monthly", "annual"]


def money(value: Decimal | None) -> str | None:
    """A decimal column as its exact string with two places ("1450.00")."""
    return None if value is None else f"{value:.2f}"


class StrictIn(Schema):
    """Input: unknown fields are refused (a typo never silently does nothing), strings are trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# Plans ----------------------------------------------------------------------------------


class PlanIn(StrictIn):
    planName: text(100, 1)  # type: ignore[valid-type]
    planDescription: text(10_000) | None = None  # type: ignore[valid-type]
    pricePerUnit: MoneyIn | None = None
    minimumPrice: MoneyIn | None = None
    maximumUnits: PositiveCount | None = None
    isCustom: bool = False
    isActive: bool = True
    features: JsonIn = Field(None, description="Free-form plan feature notes (the seed's JSONB column).")


class PlanPatch(StrictIn):
    """Only the fields sent change. Fields typed without `null` refuse an explicit null."""

    planName: text(100, 1) = None  # type: ignore[valid-type]
    planDescription: text(10_000) | None = None  # type: ignore[valid-type]
    pricePerUnit: MoneyIn | None = None
    minimumPrice: MoneyIn | None = None
    maximumUnits: PositiveCount | None = None
    isCustom: bool = None  # type: ignore[assignment]
    isActive: bool = None  # type: ignore[assignment]
    features: JsonIn = None


class PlanOut(Schema):
    id: UUID
    planName: str
    planDescription: str | None
    pricePerUnit: str | None = Field(description=MONEY)
    minimumPrice: str | None = Field(description=MONEY)
    maximumUnits: int | None
    isCustom: bool
    isActive: bool
    features: Json | None
    createdAt: datetime | None
    updatedAt: datetime | None


class PlanFilters(Schema):
    isActive: bool | None = None
    isCustom: bool | None = None


class PlanFeatureIn(StrictIn):
    featureId: UUID
    isEnabled: bool = True
    usageLimit: Count | None = Field(None, description="Uses allowed in total; null: unlimited.")


class PlanFeaturesIn(StrictIn):
    """The plan's complete feature list: rows not listed are removed."""

    features: list[PlanFeatureIn] = Field(max_length=500)


class PlanFeatureOut(Schema):
    featureId: UUID
    featureName: str
    featureCategory: str | None
    isEnabled: bool
    usageLimit: int | None


# Features -------------------------------------------------------------------------------


class FeatureIn(StrictIn):
    featureName: text(100, 1)  # type: ignore[valid-type]
    featureDescription: text(10_000) | None = None  # type: ignore[valid-type]
    featureCategory: text(50) | None = None  # type: ignore[valid-type]


class FeaturePatch(StrictIn):
    featureName: text(100, 1) = None  # type: ignore[valid-type]
    featureDescription: text(10_000) | None = None  # type: ignore[valid-type]
    featureCategory: text(50) | None = None  # type: ignore[valid-type]


class FeatureOut(Schema):
    id: UUID
    featureName: str
    featureDescription: str | None
    featureCategory: str | None
    createdAt: datetime | None
    updatedAt: datetime | None


class FeatureFilters(Schema):
    category: str | None = Field(None, max_length=50, pattern=NO_NUL, description="Exact category, any case.")


class FeatureAccessOut(Schema):
    """The seed's `feature:access:{userId}:{featureId}` cache, for the caller."""

    featureId: UUID
    isEnabled: bool
    usageLimit: int | None = Field(description="null: unlimited.")
    currentUsage: int
    lastChecked: datetime


# Subscriptions --------------------------------------------------------------------------


class SubscriptionIn(StrictIn):
    planId: UUID
    unitCount: PositiveCount
    userId: UUID | None = Field(None, description="Admins only: the subscriber (default: the caller).")
    status: Literal["active", "trial"] = "active"
    paymentFrequency: FrequencyName = "monthly"
    startDate: date | None = Field(None, description="Default: today (UTC).")
    endDate: date | None = None
    isAutoRenew: bool = True
    currentPrice: MoneyIn | None = Field(
        None, description="Admins only. Default: max(minimumPrice, pricePerUnit * unitCount) of the plan."
    )


class SubscriptionPatch(StrictIn):
    """Owners may change planId, unitCount, paymentFrequency and isAutoRenew; the rest is for admins."""

    planId: UUID = None  # type: ignore[assignment]
    unitCount: PositiveCount = None  # type: ignore[assignment]
    paymentFrequency: FrequencyName = None  # type: ignore[assignment]
    isAutoRenew: bool = None  # type: ignore[assignment]
    status: Literal["active", "trial", "expired"] = Field(
        None,  # type: ignore[arg-type]
        description="Admins only; cancel with POST /subscriptions/{id}/cancel.",
    )
    startDate: date = Field(None, description="Admins only.")  # type: ignore[assignment]
    endDate: date | None = Field(None, description="Admins only.")
    currentPrice: MoneyIn = Field(  # type: ignore[assignment]
        None, description="Admins only. Default when the plan or unit count changes: recomputed from the plan."
    )


class SubscriptionOut(Schema):
    id: UUID
    userId: UUID | None
    planId: UUID | None
    planName: str | None
    status: str | None
    paymentFrequency: str | None
    unitCount: int
    currentPrice: str = Field(description=MONEY)
    startDate: date
    endDate: date | None
    isAutoRenew: bool
    cancelledAt: datetime | None
    cancellationReason: str | None
    createdAt: datetime | None
    updatedAt: datetime | None


class SubscriptionFilters(Schema):
    userId: UUID | None = Field(None, description="Admins: any user; others see only their own anyway.")
    status: StatusName | None = None
    startFrom: date | None = Field(None, description="startDate on or after.")
    startTo: date | None = Field(None, description="startDate on or before.")
    endFrom: date | None = Field(None, description="endDate on or after.")
    endTo: date | None = Field(None, description="endDate on or before.")


class CancelIn(StrictIn):
    reason: text(2000) | None = None  # type: ignore[valid-type]


class SubscriptionStatusOut(Schema):
    """The seed's `subscription:status:{userId}` cache: the caller's current (active or trial) subscription."""

    planId: UUID | None
    planName: str | None
    status: str
    unitCount: int
    startDate: date
    endDate: date | None
    isAutoRenew: bool


# Usage ----------------------------------------------------------------------------------


class UsageOut(Schema):
    id: UUID
    userId: UUID | None
    featureId: UUID | None
    featureName: str | None
    usageCount: int
    firstUsedAt: datetime | None
    lastUsedAt: datetime | None


class UsageFilters(Schema):
    userId: UUID | None = Field(None, description="Admins: any user; others see only their own anyway.")
    featureId: UUID | None = None


# Pricing recommendations ------------------------------------------------------------------


class RecommendationIn(StrictIn):
    userId: UUID
    recommendedPlanId: UUID
    currentPlanId: UUID | None = Field(None, description="Default: the plan of the user's current subscription.")
    recommendationReason: text(10_000) | None = None  # type: ignore[valid-type]
    estimatedSavings: SignedMoneyIn | None = None
    expiresAt: Timestamp | None = None


class RecommendationOut(Schema):
    id: UUID
    userId: UUID | None
    currentPlanId: UUID | None
    recommendedPlanId: UUID | None
    recommendationReason: str | None
    estimatedSavings: str | None = Field(description=MONEY)
    createdAt: datetime | None
    expiresAt: datetime | None
    isApplied: bool
    appliedAt: datetime | None


class RecommendationFilters(Schema):
    userId: UUID | None = Field(None, description="Admins: any user; others see only their own anyway.")
    isApplied: bool | None = None


class RecommendationAppliedOut(Schema):
    recommendation: RecommendationOut
    subscription: SubscriptionOut
