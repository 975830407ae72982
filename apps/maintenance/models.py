"""Maintenance: the seed's `maintenance_requests`, `maintenance_images`, `vendors`, `work_orders`."""

from django.db import models

from apps.common.fields import (
    created_at_field,
    enum_check,
    enum_field,
    flag_field,
    timestamp_now_field,
    updated_at_field,
    uuid_primary_key,
)


class Priority(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    EMERGENCY = "emergency", "Emergency"


class MaintenanceStatus(models.TextChoices):
    SUBMITTED = "submitted", "Submitted"
    ASSIGNED = "assigned", "Assigned"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


class WorkOrderStatus(models.TextChoices):
    ASSIGNED = "assigned", "Assigned"
    SCHEDULED = "scheduled", "Scheduled"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


class MaintenanceRequest(models.Model):
    """A repair request for a unit, usually filed by its tenant."""

    id = uuid_primary_key("request_id")
    # db_index=False: the seed's idx_maintenance_unit_id (Meta.indexes) covers this column.
    unit = models.ForeignKey(
        "properties.Unit",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        db_index=False,
        related_name="maintenance_requests",
        db_column="unit_id",
    )
    tenant = models.ForeignKey(
        "leasing.Tenant",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="maintenance_requests",
        db_column="tenant_id",
    )
    category = models.CharField(max_length=100)
    priority = enum_field(Priority, default=Priority.MEDIUM, null=True)
    description = models.TextField()
    status = enum_field(MaintenanceStatus, default=MaintenanceStatus.SUBMITTED, null=True)
    created_at = created_at_field()
    updated_at = updated_at_field()
    completed_at = models.DateTimeField(null=True, blank=True)
    is_tenant_caused = models.BooleanField(null=True, blank=True)
    estimated_cost = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    actual_cost = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)

    class Meta:
        db_table = "maintenance_requests"
        indexes = [
            models.Index(fields=["unit"], name="idx_maintenance_unit_id"),
            models.Index(fields=["status"], name="idx_maintenance_status"),
            models.Index(fields=["priority"], name="idx_maintenance_priority"),
        ]
        constraints = [
            enum_check("maintenance_requests", "priority", Priority),
            enum_check("maintenance_requests", "status", MaintenanceStatus),
        ]

    def __str__(self) -> str:
        return f"{self.category} ({self.get_priority_display()}, {self.get_status_display()})"


class MaintenanceImage(models.Model):
    """A photo attached to a maintenance request, taken before or after the repair."""

    id = uuid_primary_key("image_id")
    request = models.ForeignKey(
        MaintenanceRequest,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="images",
        db_column="request_id",
    )
    image_url = models.CharField(max_length=255)
    uploaded_at = timestamp_now_field("uploaded_at")
    is_before = flag_field(True)

    class Meta:
        db_table = "maintenance_images"

    def __str__(self) -> str:
        return self.image_url


class Vendor(models.Model):
    """An outside company that carries out work orders."""

    id = uuid_primary_key("vendor_id")
    company_name = models.CharField(max_length=255)
    contact_name = models.CharField(max_length=255, null=True, blank=True)
    email = models.EmailField(max_length=255, null=True, blank=True)
    phone = models.CharField(max_length=20)
    service_category = models.CharField(max_length=100)
    is_preferred = flag_field(False)
    created_at = created_at_field()
    updated_at = updated_at_field()
    notes = models.TextField(null=True, blank=True)
    insurance_expiry = models.DateField(null=True, blank=True)
    license_number = models.CharField(max_length=100, null=True, blank=True)

    class Meta:
        db_table = "vendors"

    def __str__(self) -> str:
        return f"{self.company_name} ({self.service_category})"


class WorkOrder(models.Model):
    """A job on a maintenance request, assigned to a vendor and scheduled."""

    id = uuid_primary_key("work_order_id")
    request = models.ForeignKey(
        MaintenanceRequest,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="work_orders",
        db_column="request_id",
    )
    vendor = models.ForeignKey(
        Vendor,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="work_orders",
        db_column="vendor_id",
    )
    assigned_by = models.ForeignKey(
        "accounts.User",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="assigned_work_orders",
        db_column="assigned_by",
    )
    assigned_at = timestamp_now_field("assigned_at")
    scheduled_date = models.DateField(null=True, blank=True)
    scheduled_time_start = models.TimeField(null=True, blank=True)
    scheduled_time_end = models.TimeField(null=True, blank=True)
    status = enum_field(WorkOrderStatus, default=WorkOrderStatus.ASSIGNED, null=True)
    completion_notes = models.TextField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    invoice_amount = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    invoice_paid = flag_field(False)
    invoice_paid_date = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "work_orders"
        constraints = [enum_check("work_orders", "status", WorkOrderStatus)]

    def __str__(self) -> str:
        return f"work order {self.id} ({self.get_status_display()})"
