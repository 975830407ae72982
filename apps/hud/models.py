"""HUD integration: the seed's `housing_authorities`, `hud_programs`, `property_hud_programs`,
`hud_applications` and `hud_forms`."""

from django.db import models

from apps.common.fields import (
    created_at_field,
    enum_check,
    enum_field,
    updated_at_field,
    uuid_primary_key,
)


class PropertyHudProgramStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"


class HudApplicationStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    UNDER_REVIEW = "under_review", "Under review"
    APPROVED = "approved", "Approved"
    DENIED = "denied", "Denied"


class HudFormStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUBMITTED = "submitted", "Submitted"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


class HousingAuthority(models.Model):
    """A public housing authority that administers HUD programs."""

    id = uuid_primary_key("authority_id")
    name = models.CharField(max_length=255)
    state = models.CharField(max_length=50)
    county = models.CharField(max_length=100, null=True, blank=True)
    contact_name = models.CharField(max_length=255, null=True, blank=True)
    contact_email = models.EmailField(max_length=255, null=True, blank=True)
    contact_phone = models.CharField(max_length=20, null=True, blank=True)
    website = models.CharField(max_length=255, null=True, blank=True)
    created_at = created_at_field()
    updated_at = updated_at_field()

    class Meta:
        db_table = "housing_authorities"
        verbose_name_plural = "housing authorities"

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"


class HudProgram(models.Model):
    """A HUD program (Section 8 vouchers, ...) with its eligibility rules and forms."""

    id = uuid_primary_key("program_id")
    program_name = models.CharField(max_length=100)
    program_code = models.CharField(max_length=50)
    description = models.TextField(null=True, blank=True)
    eligibility_criteria = models.TextField(null=True, blank=True)
    required_forms = models.JSONField(null=True, blank=True)
    created_at = created_at_field()
    updated_at = updated_at_field()

    class Meta:
        db_table = "hud_programs"

    def __str__(self) -> str:
        return f"{self.program_code} {self.program_name}"


class PropertyHudProgram(models.Model):
    """A property's participation in a HUD program (edited from the program's admin)."""

    pk = models.CompositePrimaryKey("property_id", "program_id")
    # The seed's idx_property_hud_programs_property_id exceeds Django's 30-character index
    # name limit, so the migration creates it with SQL; db_index=False avoids a second index.
    property = models.ForeignKey(
        "properties.Property",
        on_delete=models.CASCADE,
        db_index=False,
        related_name="hud_program_links",
        db_column="property_id",
    )
    program = models.ForeignKey(
        HudProgram, on_delete=models.CASCADE, related_name="property_links", db_column="program_id"
    )
    authority = models.ForeignKey(
        HousingAuthority,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="property_program_links",
        db_column="authority_id",
    )
    approval_date = models.DateField(null=True, blank=True)
    expiration_date = models.DateField(null=True, blank=True)
    status = enum_field(PropertyHudProgramStatus, default=PropertyHudProgramStatus.PENDING, null=True)

    class Meta:
        db_table = "property_hud_programs"
        constraints = [enum_check("property_hud_programs", "status", PropertyHudProgramStatus)]

    def __str__(self) -> str:
        return f"property {self.property_id} in program {self.program_id} ({self.status})"


class HudApplication(models.Model):
    """A tenant's application for assistance under a HUD program."""

    id = uuid_primary_key("application_id")
    # db_index=False: the seed's idx_hud_applications_tenant_id (Meta.indexes) covers this column.
    tenant = models.ForeignKey(
        "leasing.Tenant",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        db_index=False,
        related_name="hud_applications",
        db_column="tenant_id",
    )
    program = models.ForeignKey(
        HudProgram,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="applications",
        db_column="program_id",
    )
    authority = models.ForeignKey(
        HousingAuthority,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="applications",
        db_column="authority_id",
    )
    application_date = models.DateField()
    status = enum_field(HudApplicationStatus, default=HudApplicationStatus.DRAFT, null=True)
    submission_date = models.DateTimeField(null=True, blank=True)
    decision_date = models.DateTimeField(null=True, blank=True)
    voucher_amount = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    voucher_start_date = models.DateField(null=True, blank=True)
    voucher_end_date = models.DateField(null=True, blank=True)
    notes = models.TextField(null=True, blank=True)

    class Meta:
        db_table = "hud_applications"
        indexes = [
            models.Index(fields=["tenant"], name="idx_hud_applications_tenant_id"),
            models.Index(fields=["status"], name="idx_hud_applications_status"),
        ]
        constraints = [enum_check("hud_applications", "status", HudApplicationStatus)]

    def __str__(self) -> str:
        return f"HUD application of {self.application_date} ({self.get_status_display()})"


class HudForm(models.Model):
    """A form filed with a HUD application."""

    id = uuid_primary_key("form_id")
    application = models.ForeignKey(
        HudApplication,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="forms",
        db_column="application_id",
    )
    form_type = models.CharField(max_length=100)
    form_number = models.CharField(max_length=50, null=True, blank=True)
    document_url = models.CharField(max_length=255, null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    status = enum_field(HudFormStatus, default=HudFormStatus.PENDING, null=True)
    rejection_reason = models.TextField(null=True, blank=True)

    class Meta:
        db_table = "hud_forms"
        constraints = [enum_check("hud_forms", "status", HudFormStatus)]

    def __str__(self) -> str:
        return f"{self.form_type} {self.form_number or ''}".strip()
