"""Admin for transactions, recurring charges and late fees."""

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from apps.common.service_admin import ServiceWriteAdmin
from apps.finance import services
from apps.finance.models import LateFee, RecurringTransaction, Transaction

WAIVE_REASON = "Waived by admin action"


class LateFeeInline(admin.TabularInline):
    model = LateFee
    extra = 0
    fields = ["amount", "days_late", "applied_at", "is_waived", "waived_by", "waived_at", "waive_reason"]
    raw_id_fields = ["waived_by"]


@admin.register(Transaction)
class TransactionAdmin(ServiceWriteAdmin):
    list_display = [
        "transaction_type",
        "amount",
        "payment_status",
        "due_date",
        "payment_date",
        "payment_method",
        "property",
        "lease",
        "reference_number",
        "is_recurring",
    ]
    list_filter = [
        "payment_status",
        "transaction_type",
        "is_recurring",
        "payment_method",
        "due_date",
        "payment_date",
        "property",
    ]
    search_fields = [
        "reference_number",
        "description",
        "property__property_name",
        "lease__unit__unit_number",
    ]
    list_select_related = ["property", "lease", "lease__unit", "lease__unit__property"]
    autocomplete_fields = ["property", "lease"]
    readonly_fields = ["created_at", "updated_at"]
    date_hierarchy = "due_date"
    inlines = [LateFeeInline]

    def service_save(self, request: HttpRequest, obj: Transaction) -> None:
        services.transaction_admin_save(tx=obj)

    def service_delete(self, request: HttpRequest, obj: Transaction) -> None:
        services.transaction_admin_delete(tx=obj)


@admin.register(RecurringTransaction)
class RecurringTransactionAdmin(admin.ModelAdmin):
    list_display = [
        "lease",
        "transaction_type",
        "amount",
        "frequency",
        "day_of_month",
        "start_date",
        "end_date",
        "is_active",
    ]
    list_filter = ["is_active", "frequency", "transaction_type", "start_date", "end_date"]
    search_fields = [
        "description",
        "lease__unit__unit_number",
        "lease__unit__property__property_name",
    ]
    list_select_related = ["lease", "lease__unit", "lease__unit__property"]
    autocomplete_fields = ["lease"]
    readonly_fields = ["created_at", "updated_at"]
    date_hierarchy = "start_date"


@admin.register(LateFee)
class LateFeeAdmin(admin.ModelAdmin):
    list_display = [
        "transaction",
        "amount",
        "days_late",
        "applied_at",
        "is_waived",
        "waived_by",
        "waived_at",
    ]
    list_filter = ["is_waived", "applied_at", "waived_at"]
    search_fields = [
        "transaction__reference_number",
        "transaction__property__property_name",
        "waive_reason",
    ]
    list_select_related = ["transaction", "waived_by"]
    autocomplete_fields = ["transaction"]
    raw_id_fields = ["waived_by"]
    date_hierarchy = "applied_at"
    actions = ["waive_selected"]

    @admin.action(description="Waive selected late fees")
    def waive_selected(self, request: HttpRequest, queryset: QuerySet[LateFee]) -> None:
        """Waive the not-yet-waived fees, recording who waived them and when."""
        waived = queryset.filter(Q(is_waived=False) | Q(is_waived__isnull=True)).update(
            is_waived=True,
            waived_by=request.user,
            waived_at=timezone.now(),
            waive_reason=WAIVE_REASON,
        )
        skipped = queryset.count() - waived
        self.message_user(request, f"Waived {waived} late fee(s).", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} late fee(s) were already waived.", messages.WARNING)
