"""Pricing and subscriptions: the seed's `subscription_plans`, `subscriptions`, `feature_access`,
`plan_features`, `usage_tracking` and `ai_pricing_recommendations`."""

from django.db import models
from django.db.models.functions import Now
from django.utils import timezone

from apps.common.fields import (
    created_at_field,
    enum_check,
    enum_field,
    flag_field,
    timestamp_now_field,
    updated_at_field,
    uuid_primary_key,
)


class SubscriptionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"
    TRIAL = "trial", "Trial"


class PaymentFrequency(models.TextChoices):
    MONTHLY = "monthly", "Monthly"
    ANNUAL = "annual", "Annual"


class SubscriptionPlan(models.Model):
    """A plan landlords subscribe to, priced per unit."""

    id = uuid_primary_key("plan_id")
    plan_name = models.CharField(max_length=100)
    plan_description = models.TextField(null=True, blank=True)
    price_per_unit = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    minimum_price = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    maximum_units = models.IntegerField(null=True, blank=True)
    is_custom = flag_field(False)
    features = models.JSONField(null=True, blank=True)
    created_at = created_at_field()
    updated_at = updated_at_field()
    is_active = flag_field(True)

    class Meta:
        db_table = "subscription_plans"

    def __str__(self) -> str:
        return self.plan_name


class Subscription(models.Model):
    """A user's subscription to a plan for a number of units."""

    id = uuid_primary_key("subscription_id")
    # db_index=False: the seed's idx_subscriptions_user_id (Meta.indexes) covers this column.
    user = models.ForeignKey(
        "accounts.User",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        db_index=False,
        related_name="subscriptions",
        db_column="user_id",
    )
    plan = models.ForeignKey(
        SubscriptionPlan,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="subscriptions",
        db_column="plan_id",
    )
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True)
    status = enum_field(SubscriptionStatus, default=SubscriptionStatus.ACTIVE, null=True)
    payment_frequency = enum_field(PaymentFrequency, default=PaymentFrequency.MONTHLY, null=True)
    unit_count = models.IntegerField()
    current_price = models.DecimalField(max_digits=10, decimal_places=2)
    created_at = created_at_field()
    updated_at = updated_at_field()
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancellation_reason = models.TextField(null=True, blank=True)
    is_auto_renew = flag_field(True)

    class Meta:
        db_table = "subscriptions"
        indexes = [
            models.Index(fields=["user"], name="idx_subscriptions_user_id"),
            models.Index(fields=["status"], name="idx_subscriptions_status"),
            models.Index(fields=["start_date", "end_date"], name="idx_subscriptions_dates"),
        ]
        constraints = [
            enum_check("subscriptions", "status", SubscriptionStatus),
            enum_check("subscriptions", "payment_frequency", PaymentFrequency),
        ]

    def __str__(self) -> str:
        return f"{self.plan_id} for {self.user_id} ({self.get_status_display()})"


class SubscriptionExpiryNotice(models.Model):
    """That the owner of a subscription was told its period ending on `end_date` is about to end.

    Not a seed table: the daily job's record that makes the "expiring" notice go out once per
    period, however often the job runs (the unique key is the guarantee, not a check)."""

    id = models.BigAutoField(primary_key=True)
    # db_index=False: the unique key (subscription_id, end_date) serves lookups by subscription.
    subscription = models.ForeignKey(
        Subscription,
        on_delete=models.CASCADE,
        db_index=False,
        related_name="expiry_notices",
        db_column="subscription_id",
    )
    end_date = models.DateField()
    sent_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)

    class Meta:
        db_table = "subscription_expiry_notices"
        constraints = [
            models.UniqueConstraint(fields=["subscription", "end_date"], name="subscription_expiry_notice_once")
        ]

    def __str__(self) -> str:
        return f"expiry notice of {self.subscription_id} for {self.end_date}"


class Feature(models.Model):
    """A feature of the product that plans enable (the seed's `feature_access`)."""

    id = uuid_primary_key("feature_id")
    feature_name = models.CharField(max_length=100)
    feature_description = models.TextField(null=True, blank=True)
    feature_category = models.CharField(max_length=50, null=True, blank=True)
    created_at = created_at_field()
    updated_at = updated_at_field()

    class Meta:
        db_table = "feature_access"

    def __str__(self) -> str:
        return self.feature_name


class PlanFeature(models.Model):
    """A feature enabled in a plan, with an optional usage limit (edited from the plan's admin)."""

    pk = models.CompositePrimaryKey("plan_id", "feature_id")
    plan = models.ForeignKey(
        SubscriptionPlan, on_delete=models.CASCADE, related_name="plan_features", db_column="plan_id"
    )
    feature = models.ForeignKey(Feature, on_delete=models.CASCADE, related_name="plan_features", db_column="feature_id")
    is_enabled = flag_field(True)
    usage_limit = models.IntegerField(null=True, blank=True)

    class Meta:
        db_table = "plan_features"

    def __str__(self) -> str:
        return f"{self.feature_id} in plan {self.plan_id}"


class UsageRecord(models.Model):
    """How often a user has used a feature (the seed's `usage_tracking`)."""

    id = uuid_primary_key("tracking_id")
    user = models.ForeignKey(
        "accounts.User",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="usage_records",
        db_column="user_id",
    )
    feature = models.ForeignKey(
        Feature,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="usage_records",
        db_column="feature_id",
    )
    usage_count = models.IntegerField(default=1, db_default=1, null=True, blank=True)
    first_used_at = timestamp_now_field("first_used_at")
    last_used_at = timestamp_now_field("last_used_at")

    class Meta:
        db_table = "usage_tracking"

    def __str__(self) -> str:
        return f"{self.feature_id} used {self.usage_count} times by {self.user_id}"


class PricingRecommendation(models.Model):
    """An AI suggestion that a user move from one plan to another."""

    id = uuid_primary_key("recommendation_id")
    user = models.ForeignKey(
        "accounts.User",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="pricing_recommendations",
        db_column="user_id",
    )
    current_plan = models.ForeignKey(
        SubscriptionPlan,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="recommendations_from",
        db_column="current_plan_id",
    )
    recommended_plan = models.ForeignKey(
        SubscriptionPlan,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="recommendations_to",
        db_column="recommended_plan_id",
    )
    recommendation_reason = models.TextField(null=True, blank=True)
    estimated_savings = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    created_at = created_at_field()
    expires_at = models.DateTimeField(null=True, blank=True)
    is_applied = flag_field(False)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "ai_pricing_recommendations"

    def __str__(self) -> str:
        return f"recommendation for {self.user_id}: {self.current_plan_id} -> {self.recommended_plan_id}"
