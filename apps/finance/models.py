"""Money in and out: the seed's `transactions`, `recurring_transactions`, `late_fees`."""

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


class TransactionType(models.TextChoices):
    RENT = "rent", "Rent"
    DEPOSIT = "deposit", "Deposit"
    FEE = "fee", "Fee"
    MAINTENANCE = "maintenance", "Maintenance"
    UTILITY = "utility", "Utility"
    OTHER = "other", "Other"


class PaymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PAID = "paid", "Paid"
    LATE = "late", "Late"
    PARTIAL = "partial", "Partial"
    WAIVED = "waived", "Waived"


class RecurringTransactionType(models.TextChoices):
    RENT = "rent", "Rent"
    FEE = "fee", "Fee"
    UTILITY = "utility", "Utility"
    OTHER = "other", "Other"


class RecurrenceFrequency(models.TextChoices):
    MONTHLY = "monthly", "Monthly"
    QUARTERLY = "quarterly", "Quarterly"
    ANNUALLY = "annually", "Annually"


class Transaction(models.Model):
    """A charge or payment on a property, usually tied to a lease."""

    id = uuid_primary_key("transaction_id")
    # lease and property are indexed by idx_transactions_* below: no second Django FK index.
    lease = models.ForeignKey(
        "leasing.Lease",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="transactions",
        db_column="lease_id",
        db_index=False,
    )
    property = models.ForeignKey(
        "properties.Property",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="transactions",
        db_column="property_id",
        db_index=False,
    )
    transaction_type = enum_field(TransactionType)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    due_date = models.DateField(null=True, blank=True)
    payment_date = models.DateTimeField(null=True, blank=True)
    payment_method = models.CharField(max_length=50, null=True, blank=True)
    payment_status = enum_field(PaymentStatus, default=PaymentStatus.PENDING, null=True)
    created_at = created_at_field()
    updated_at = updated_at_field()
    description = models.TextField(null=True, blank=True)
    reference_number = models.CharField(max_length=100, null=True, blank=True)
    is_recurring = flag_field(False)

    class Meta:
        db_table = "transactions"
        ordering = ["-due_date", "-created_at"]
        indexes = [
            models.Index(fields=["lease"], name="idx_transactions_lease_id"),
            models.Index(fields=["property"], name="idx_transactions_property_id"),
            # idx_transactions_payment_status (31 chars > Django's 30) is added by RunSQL in the migration.
            models.Index(fields=["due_date"], name="idx_transactions_due_date"),
        ]
        constraints = [
            enum_check("transactions", "transaction_type", TransactionType),
            enum_check("transactions", "payment_status", PaymentStatus),
        ]

    def __str__(self) -> str:
        due = f" due {self.due_date}" if self.due_date else ""
        return f"{self.get_transaction_type_display()} {self.amount}{due} ({self.payment_status})"


class RecurringTransaction(models.Model):
    """A schedule that generates a charge on a lease every month, quarter or year."""

    id = uuid_primary_key("recurring_id")
    lease = models.ForeignKey(
        "leasing.Lease",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="recurring_transactions",
        db_column="lease_id",
    )
    transaction_type = enum_field(RecurringTransactionType)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    frequency = enum_field(RecurrenceFrequency, default=RecurrenceFrequency.MONTHLY, null=True)
    day_of_month = models.IntegerField()
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True)
    is_active = flag_field(True)
    created_at = created_at_field()
    updated_at = updated_at_field()
    description = models.TextField(null=True, blank=True)

    class Meta:
        db_table = "recurring_transactions"
        ordering = ["-start_date"]
        constraints = [
            enum_check("recurring_transactions", "transaction_type", RecurringTransactionType),
            enum_check("recurring_transactions", "frequency", RecurrenceFrequency),
        ]

    def __str__(self) -> str:
        return f"{self.get_transaction_type_display()} {self.amount} {self.frequency} on day {self.day_of_month}"


class LateFee(models.Model):
    """A penalty applied to an overdue transaction; a staff user may waive it."""

    id = uuid_primary_key("late_fee_id")
    transaction = models.ForeignKey(
        Transaction,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="late_fees",
        db_column="transaction_id",
    )
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    days_late = models.IntegerField()
    applied_at = timestamp_now_field("applied_at")
    is_waived = flag_field(False)
    waived_by = models.ForeignKey(
        "accounts.User",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="waived_late_fees",
        db_column="waived_by",
    )
    waived_at = models.DateTimeField(null=True, blank=True)
    waive_reason = models.TextField(null=True, blank=True)

    class Meta:
        db_table = "late_fees"
        ordering = ["-applied_at"]

    def __str__(self) -> str:
        waived = ", waived" if self.is_waived else ""
        return f"late fee {self.amount} ({self.days_late} days late{waived})"


class RecurringChargeRun(models.Model):
    """The charge a recurring transaction made for one period (EXTENSION: not in the seed).

    Unique per (recurring transaction, first day of the due date's month): the key that makes
    a period's charge exactly once, whichever worker or rerun gets there. The row stays when the
    charge is deleted (`transaction` becomes NULL), so a deleted charge is not made again.
    """

    id = models.BigAutoField(primary_key=True)
    recurring = models.ForeignKey(
        RecurringTransaction, on_delete=models.CASCADE, related_name="charge_runs", db_column="recurring_id"
    )
    period_start = models.DateField()
    transaction = models.ForeignKey(
        Transaction,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_column="transaction_id",
    )
    created_at = created_at_field()

    class Meta:
        db_table = "recurring_charge_runs"
        ordering = ["recurring", "period_start"]
        constraints = [
            models.UniqueConstraint(fields=["recurring", "period_start"], name="recurring_charge_runs_period_key")
        ]

    def __str__(self) -> str:
        return f"charge of {self.recurring_id} for {self.period_start}"
