"""Tenants and their leases: the seed's `tenants`, `leases`, `lease_tenants`, `lease_documents`."""

from datetime import datetime

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


class BackgroundCheckStatus(models.TextChoices):
    """Screening outcome; the seed uses the same ENUM for background and credit checks."""

    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    DENIED = "denied", "Denied"
    NOT_SUBMITTED = "not_submitted", "Not submitted"


class LeaseStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Expired"
    TERMINATED = "terminated", "Terminated"
    RENEWED = "renewed", "Renewed"


class Tenant(models.Model):
    """The renter profile of a user: identity, income and screening results."""

    id = uuid_primary_key("tenant_id")
    # Indexed by idx_tenants_user_id below, so no second Django FK index.
    user = models.ForeignKey(
        "accounts.User",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="tenant_profiles",
        db_column="user_id",
        db_index=False,
    )
    date_of_birth = models.DateField()
    ssn_last_four = models.CharField(max_length=4)
    income = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    employment_status = models.CharField(max_length=50, null=True, blank=True)
    employer_name = models.CharField(max_length=255, null=True, blank=True)
    emergency_contact_name = models.CharField(max_length=255, null=True, blank=True)
    emergency_contact_phone = models.CharField(max_length=20, null=True, blank=True)
    created_at = created_at_field()
    updated_at = updated_at_field()
    background_check_status = enum_field(BackgroundCheckStatus, default=BackgroundCheckStatus.NOT_SUBMITTED, null=True)
    credit_check_status = enum_field(BackgroundCheckStatus, default=BackgroundCheckStatus.NOT_SUBMITTED, null=True)

    class Meta:
        db_table = "tenants"
        indexes = [
            models.Index(fields=["user"], name="idx_tenants_user_id"),
            models.Index(fields=["background_check_status"], name="idx_tenants_background_check"),
        ]
        constraints = [
            enum_check("tenants", "background_check_status", BackgroundCheckStatus),
            enum_check("tenants", "credit_check_status", BackgroundCheckStatus),
        ]

    def __str__(self) -> str:
        if self.user is None:  # no query when user_id is None
            return f"Tenant {self.id}"
        return f"{self.user.first_name} {self.user.last_name} <{self.user.email}>"


class Lease(models.Model):
    """A rental agreement for one unit over a date range."""

    id = uuid_primary_key("lease_id")
    # Indexed by idx_leases_unit_id below, so no second Django FK index.
    unit = models.ForeignKey(
        "properties.Unit",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="leases",
        db_column="unit_id",
        db_index=False,
    )
    start_date = models.DateField()
    end_date = models.DateField()
    monthly_rent = models.DecimalField(max_digits=10, decimal_places=2)
    security_deposit = models.DecimalField(max_digits=10, decimal_places=2)
    lease_status = enum_field(LeaseStatus, default=LeaseStatus.DRAFT, null=True)
    created_at = created_at_field()
    updated_at = updated_at_field()
    lease_document_url = models.CharField(max_length=255, null=True, blank=True)
    is_signed = flag_field(False)
    special_terms = models.TextField(null=True, blank=True)
    auto_renewal = flag_field(False)

    class Meta:
        db_table = "leases"
        ordering = ["-start_date"]
        indexes = [
            models.Index(fields=["unit"], name="idx_leases_unit_id"),
            models.Index(fields=["lease_status"], name="idx_leases_status"),
            models.Index(fields=["start_date", "end_date"], name="idx_leases_dates"),
        ]
        constraints = [enum_check("leases", "lease_status", LeaseStatus)]

    def __str__(self) -> str:
        where = str(self.unit) if self.unit_id is not None else "no unit"
        return f"{where}: {self.start_date} to {self.end_date}"


class LeaseTenant(models.Model):
    """A tenant on a lease (composite key: lease, tenant); one may be the primary."""

    pk = models.CompositePrimaryKey("lease_id", "tenant_id")
    # The primary key's index already leads with lease_id: no second Django FK index.
    lease = models.ForeignKey(
        Lease,
        on_delete=models.CASCADE,
        related_name="tenant_links",
        db_column="lease_id",
        db_index=False,
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="lease_links", db_column="tenant_id")
    is_primary = flag_field(False)
    created_at = created_at_field()

    class Meta:
        db_table = "lease_tenants"

    def __str__(self) -> str:
        role = "primary tenant" if self.is_primary else "tenant"
        return f"{role} {self.tenant_id} on lease {self.lease_id}"


class LeaseDocument(models.Model):
    """A file attached to a lease (the lease itself, addenda, notices), maybe signed."""

    id = uuid_primary_key("document_id")
    lease = models.ForeignKey(
        Lease,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="documents",
        db_column="lease_id",
    )
    document_type = models.CharField(max_length=100)
    document_url = models.CharField(max_length=255)
    uploaded_by = models.ForeignKey(
        "accounts.User",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="uploaded_lease_documents",
        db_column="uploaded_by",
    )
    uploaded_at = timestamp_now_field("uploaded_at")
    is_signed = flag_field(False)
    signed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "lease_documents"

    def __str__(self) -> str:
        return f"{self.document_type}: {self.document_url}"


class InvitationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"


class LeaseInvitation(models.Model):
    """Extension: a tenant-type user invited onto a lease. Only accepting it creates the
    `lease_tenants` row (and the tenant record if the user has none); until then the user
    sees nothing of the lease. At most one pending invitation per lease and user.

    A pending invitation past `expires_at` is expired whether or not its status says so yet
    (`effective_status`); it is written as `expired` when someone acts on it.
    """

    id = uuid_primary_key("invitation_id")
    lease = models.ForeignKey(Lease, on_delete=models.CASCADE, related_name="invitations", db_column="lease_id")
    # Indexed by idx_lease_invitations_user below, so no second Django FK index.
    invited_user = models.ForeignKey(
        "accounts.User",
        on_delete=models.CASCADE,
        related_name="lease_invitations",
        db_column="invited_user_id",
        db_index=False,
    )
    invited_by = models.ForeignKey(
        "accounts.User",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="sent_lease_invitations",
        db_column="invited_by",
    )
    is_primary = models.BooleanField(default=False, db_default=False)
    status = enum_field(InvitationStatus, default=InvitationStatus.PENDING)
    # The tenant record's fields the inviter gave (camelCase keys of the API), used only if the
    # user has no tenant record when accepting; null when the inviter gave none.
    tenant_profile = models.JSONField(null=True, blank=True)
    created_at = created_at_field()
    responded_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()

    class Meta:
        db_table = "lease_invitations"
        indexes = [
            models.Index(fields=["invited_user", "status"], name="idx_lease_invitations_user"),
        ]
        constraints = [
            enum_check("lease_invitations", "status", InvitationStatus),
            models.UniqueConstraint(
                fields=["lease", "invited_user"],
                condition=models.Q(status="pending"),
                name="lease_invitations_one_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"invitation of {self.invited_user_id} to lease {self.lease_id} ({self.status})"

    def effective_status(self, now: datetime) -> str:
        """The status as of `now`: a pending invitation past its expiry is expired."""
        if self.status == InvitationStatus.PENDING and self.expires_at <= now:
            return InvitationStatus.EXPIRED
        return self.status


class LeaseNotice(models.Model):
    """Extension: a lifecycle notice sent about a lease (`ending:60`, `ending:30`, `expired`,
    `renewed`; apps/leasing/lifecycle.py), at most once per lease and notice (the unique key
    `lease_notices_once`). `due_on` is the day the daily job sent it for."""

    id = models.BigAutoField(primary_key=True, db_column="notice_id")
    # The unique constraint's index already leads with lease_id: no second Django FK index.
    lease = models.ForeignKey(
        Lease, on_delete=models.CASCADE, related_name="notices", db_column="lease_id", db_index=False
    )
    notice = models.CharField(max_length=32)
    due_on = models.DateField()
    created_at = created_at_field()

    class Meta:
        db_table = "lease_notices"
        constraints = [models.UniqueConstraint(fields=["lease", "notice"], name="lease_notices_once")]

    def __str__(self) -> str:
        return f"{self.notice} notice of lease {self.lease_id} ({self.due_on})"
