"""Admin for plans, subscriptions, features, usage and pricing recommendations.

`PlanFeature` has a composite primary key, which Django admin cannot register or
inline; a plan's features are edited as an `enabled_features` field on the plan page.
"""

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.http import HttpRequest
from django.utils.html import format_html_join

from apps.common.service_admin import ServiceWriteAdmin
from apps.subscriptions import services
from apps.subscriptions.models import (
    Feature,
    PlanFeature,
    PricingRecommendation,
    Subscription,
    SubscriptionPlan,
    UsageRecord,
)


class SubscriptionPlanAdminForm(forms.ModelForm):
    """Plan form with an `enabled_features` field backed by `plan_features` rows."""

    enabled_features = forms.ModelMultipleChoiceField(
        queryset=Feature.objects.order_by("feature_category", "feature_name"),
        required=False,
        widget=FilteredSelectMultiple("features", is_stacked=False),
        help_text=(
            "Adding a feature enables it in this plan. Removing one disables it "
            "(its row and usage limit are kept with is_enabled = false)."
        ),
    )

    class Meta:
        model = SubscriptionPlan
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance._state.adding:
            self.fields["enabled_features"].initial = list(
                PlanFeature.objects.filter(plan=self.instance, is_enabled=True).values_list("feature_id", flat=True)
            )

    def save_enabled_features(self) -> None:
        """Make the plan's enabled `plan_features` rows match the chosen features."""
        chosen = {feature.pk for feature in self.cleaned_data.get("enabled_features", [])}
        links = PlanFeature.objects.filter(plan=self.instance)
        links.filter(is_enabled=True).exclude(feature_id__in=chosen).update(is_enabled=False)
        links.filter(feature_id__in=chosen).exclude(is_enabled=True).update(is_enabled=True)
        existing = set(links.values_list("feature_id", flat=True))
        PlanFeature.objects.bulk_create(
            [PlanFeature(plan=self.instance, feature_id=pk, is_enabled=True) for pk in chosen - existing],
            ignore_conflicts=True,
        )


@admin.register(SubscriptionPlan)
class SubscriptionPlanAdmin(ServiceWriteAdmin):
    form = SubscriptionPlanAdminForm
    list_display = [
        "plan_name",
        "price_per_unit",
        "minimum_price",
        "maximum_units",
        "is_custom",
        "is_active",
        "created_at",
    ]
    list_filter = ["is_active", "is_custom"]
    search_fields = ["plan_name", "plan_description"]
    readonly_fields = ["feature_limits", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["plan_name", "plan_description", "is_active", "is_custom"]}),
        ("Pricing", {"fields": ["price_per_unit", "minimum_price", "maximum_units"]}),
        ("Features", {"fields": ["enabled_features", "feature_limits", "features"]}),
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description="feature rows (plan_features)")
    def feature_limits(self, obj: SubscriptionPlan) -> str:
        if obj._state.adding:
            return "-"
        rows = PlanFeature.objects.filter(plan=obj).select_related("feature")
        return (
            format_html_join(
                "",
                "<div>{} — {}, usage limit {}</div>",
                (
                    (
                        row.feature.feature_name,
                        "enabled" if row.is_enabled else "disabled",
                        "none" if row.usage_limit is None else row.usage_limit,
                    )
                    for row in rows.order_by("feature__feature_name")
                ),
            )
            or "-"
        )

    def service_save(self, request: HttpRequest, obj: SubscriptionPlan) -> None:
        services.plan_admin_save(plan=obj)

    def service_delete(self, request: HttpRequest, obj: SubscriptionPlan) -> None:
        services.plan_admin_delete(plan=obj)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        form.save_enabled_features()


@admin.register(Subscription)
class SubscriptionAdmin(ServiceWriteAdmin):
    list_display = [
        "user",
        "plan",
        "status",
        "payment_frequency",
        "unit_count",
        "current_price",
        "start_date",
        "end_date",
        "is_auto_renew",
    ]
    list_filter = ["status", "payment_frequency", "plan", "is_auto_renew", "start_date", "end_date"]
    search_fields = ["user__email", "user__last_name", "plan__plan_name", "cancellation_reason"]
    list_select_related = ["user", "plan"]
    raw_id_fields = ["user"]
    readonly_fields = ["created_at", "updated_at"]
    date_hierarchy = "start_date"

    def service_save(self, request: HttpRequest, obj: Subscription) -> None:
        services.subscription_admin_save(subscription=obj)

    def service_delete(self, request: HttpRequest, obj: Subscription) -> None:
        services.subscription_admin_delete(subscription=obj)


@admin.register(Feature)
class FeatureAdmin(ServiceWriteAdmin):
    list_display = ["feature_name", "feature_category", "created_at"]
    list_filter = ["feature_category"]
    search_fields = ["feature_name", "feature_description", "feature_category"]
    readonly_fields = ["created_at", "updated_at"]

    def service_save(self, request: HttpRequest, obj: Feature) -> None:
        services.feature_admin_save(feature=obj)

    def service_delete(self, request: HttpRequest, obj: Feature) -> None:
        services.feature_admin_delete(feature=obj)


@admin.register(UsageRecord)
class UsageRecordAdmin(ServiceWriteAdmin):
    list_display = ["user", "feature", "usage_count", "first_used_at", "last_used_at"]
    list_filter = ["feature", "last_used_at"]
    search_fields = ["user__email", "user__last_name", "feature__feature_name"]
    list_select_related = ["user", "feature"]
    raw_id_fields = ["user"]
    date_hierarchy = "last_used_at"

    def service_save(self, request: HttpRequest, obj: UsageRecord) -> None:
        services.usage_admin_save(row=obj)

    def service_delete(self, request: HttpRequest, obj: UsageRecord) -> None:
        services.usage_admin_delete(row=obj)


@admin.register(PricingRecommendation)
class PricingRecommendationAdmin(admin.ModelAdmin):
    list_display = [
        "user",
        "current_plan",
        "recommended_plan",
        "estimated_savings",
        "is_applied",
        "created_at",
        "expires_at",
    ]
    list_filter = ["is_applied", "recommended_plan", "created_at", "expires_at"]
    search_fields = ["user__email", "user__last_name", "recommendation_reason"]
    list_select_related = ["user", "current_plan", "recommended_plan"]
    raw_id_fields = ["user"]
    readonly_fields = ["created_at"]
    date_hierarchy = "created_at"
