"""Admin for maintenance requests (with their images and work orders inline), vendors and work orders."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.common.service_admin import ServiceWriteAdmin
from apps.maintenance import services
from apps.maintenance.models import MaintenanceImage, MaintenanceRequest, Vendor, WorkOrder


class MaintenanceImageInline(admin.TabularInline):
    model = MaintenanceImage
    extra = 0
    fields = ["image_url", "is_before", "uploaded_at"]


class WorkOrderInline(admin.StackedInline):
    model = WorkOrder
    extra = 0
    raw_id_fields = ["assigned_by"]
    show_change_link = True
    fields = [
        ("vendor", "status"),
        ("assigned_by", "assigned_at"),
        ("scheduled_date", "scheduled_time_start", "scheduled_time_end"),
        ("invoice_amount", "invoice_paid", "invoice_paid_date"),
        "completed_at",
        "completion_notes",
    ]


@admin.register(MaintenanceRequest)
class MaintenanceRequestAdmin(ServiceWriteAdmin):
    list_display = [
        "category",
        "unit",
        "tenant",
        "priority",
        "status",
        "is_tenant_caused",
        "estimated_cost",
        "actual_cost",
        "created_at",
        "completed_at",
    ]
    list_filter = [
        "status",
        "priority",
        "category",
        "is_tenant_caused",
        "unit__property",
        "created_at",
        "completed_at",
    ]
    search_fields = [
        "category",
        "description",
        "unit__unit_number",
        "unit__property__property_name",
        "tenant__user__email",
        "tenant__user__last_name",
    ]
    list_select_related = ["unit__property", "tenant__user"]
    raw_id_fields = ["unit", "tenant"]
    readonly_fields = ["created_at", "updated_at"]
    date_hierarchy = "created_at"
    inlines = [MaintenanceImageInline, WorkOrderInline]
    fieldsets = [
        (None, {"fields": ["unit", "tenant", "category", "description"]}),
        ("Handling", {"fields": ["priority", "status", "completed_at", "is_tenant_caused"]}),
        ("Cost", {"fields": ["estimated_cost", "actual_cost"]}),
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]

    def service_save(self, request: HttpRequest, obj: MaintenanceRequest) -> None:
        services.maintenance_request_admin_save(request=obj)

    def service_delete(self, request: HttpRequest, obj: MaintenanceRequest) -> None:
        services.maintenance_request_admin_delete(request=obj)

    def inline_save(self, request: HttpRequest, obj: Any) -> None:
        if isinstance(obj, WorkOrder):
            services.work_order_admin_save(order=obj)
        else:
            obj.save()

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        services.maintenance_request_admin_settle(request=form.instance)

    def inline_delete(self, request: HttpRequest, obj: Any) -> None:
        if isinstance(obj, WorkOrder):
            services.work_order_admin_delete(order=obj)
        else:
            obj.delete()


@admin.register(MaintenanceImage)
class MaintenanceImageAdmin(admin.ModelAdmin):
    list_display = ["image_url", "request", "is_before", "uploaded_at"]
    list_filter = ["is_before", "request__unit__property", "uploaded_at"]
    search_fields = ["image_url", "request__category", "request__unit__unit_number"]
    list_select_related = ["request"]
    raw_id_fields = ["request"]
    date_hierarchy = "uploaded_at"


@admin.register(Vendor)
class VendorAdmin(admin.ModelAdmin):
    list_display = [
        "company_name",
        "service_category",
        "contact_name",
        "phone",
        "email",
        "is_preferred",
        "insurance_expiry",
    ]
    list_filter = ["is_preferred", "service_category", "insurance_expiry"]
    search_fields = ["company_name", "contact_name", "email", "phone", "license_number"]
    readonly_fields = ["created_at", "updated_at"]


@admin.register(WorkOrder)
class WorkOrderAdmin(ServiceWriteAdmin):
    list_display = [
        "id",
        "request",
        "vendor",
        "status",
        "request_priority",
        "scheduled_date",
        "scheduled_time_start",
        "assigned_by",
        "invoice_amount",
        "invoice_paid",
    ]
    list_filter = [
        "status",
        "request__priority",
        "invoice_paid",
        "vendor",
        "request__unit__property",
        "scheduled_date",
        "assigned_at",
    ]
    search_fields = [
        "request__category",
        "request__description",
        "request__unit__unit_number",
        "request__unit__property__property_name",
        "vendor__company_name",
        "completion_notes",
    ]
    list_select_related = ["request", "vendor", "assigned_by"]
    raw_id_fields = ["request", "assigned_by"]
    date_hierarchy = "scheduled_date"

    def service_save(self, request: HttpRequest, obj: WorkOrder) -> None:
        services.work_order_admin_save(order=obj)

    def service_delete(self, request: HttpRequest, obj: WorkOrder) -> None:
        services.work_order_admin_delete(order=obj)

    @admin.display(description="priority", ordering="request__priority")
    def request_priority(self, obj: WorkOrder) -> str | None:
        return obj.request.get_priority_display() if obj.request else None
