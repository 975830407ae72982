"""The lease lifecycle: notices before a lease ends, and its end (expired, or renewed into a successor).

A lease runs through its `end_date` (inclusive). On the first day after it, an active lease
ends: it becomes `expired`, or, with `auto_renewal`, `renewed`, and a successor lease takes
over from that day with the same unit, tenants (the same primary) and terms for the same
length, its rent changed by `PMS_LEASE_RENEWAL_RENT_CHANGE_PERCENT` (default 0). Before
that, the lease's tenants and its property's landlord and managers get a notice
`PMS_LEASE_NOTICE_DAYS` days before `end_date` (default 60 and 30). See docs/leases.md.

Guarantees (the daily jobs in `jobs.py` rely on them):
- a lease ends once: `lease_end` holds the lease's row lock and acts only on an active lease,
  so two workers, or a rerun, renew it once and create one successor;
- each notice goes out once per lease: the `lease_notices` row (unique per lease and notice)
  is written in the transaction that raises it, under the lease's row lock; an earlier
  notice is not sent once a later one (fewer days before the end) went out;
- every write goes through the leasing services (`lease.updated`, the unit's occupancy and
  `unit.updated`, topic access re-checks), and notices go out after the commit
  (`apps.events.notices.notify_on_commit`): a rolled-back end notifies nobody.
"""

import logging
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.events.notices import Notice, notify_on_commit
from apps.leasing import services
from apps.leasing.models import Lease, LeaseNotice, LeaseStatus, LeaseTenant
from apps.properties import selectors as property_selectors

logger = logging.getLogger(__name__)

NOTICE_ENDING = "lease_ending"
NOTICE_EXPIRED = "lease_expired"
NOTICE_RENEWED = "lease_renewed"
REFERENCE_TYPE = "lease"
# How long the expiry and renewal notices stay (the ending notices stay until the lease's end).
AFTER_END_NOTICE_DAYS = 90

CENT = Decimal("0.01")


def ending_notice_key(days: int) -> str:
    """The `lease_notices.notice` of the notice `days` before the end."""
    return f"ending:{days}"


# Dates and terms


def add_months(day: date, months: int) -> date:
    """`day` moved by `months` calendar months, its day of month clamped to the month's last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    following = date(year + month // 12, month % 12 + 1, 1)
    return date(year, month, min(day.day, (following - timedelta(days=1)).day))


def successor_dates(lease: Lease) -> tuple[date, date]:
    """The successor's term: from the day after `end_date`, as many whole months and days as the lease ran
    (a lease of 2026-01-01 to 2026-12-31 is followed by 2027-01-01 to 2027-12-31)."""
    after = lease.end_date + timedelta(days=1)
    months = (after.year - lease.start_date.year) * 12 + after.month - lease.start_date.month
    if add_months(lease.start_date, months) > after:
        months -= 1
    days = (after - add_months(lease.start_date, months)).days
    return after, add_months(after, months) + timedelta(days=days - 1)


def renewed_rent(rent: Decimal) -> Decimal:
    """`rent` changed by `PMS_LEASE_RENEWAL_RENT_CHANGE_PERCENT`, to the cent (half up)."""
    percent = Decimal(settings.LEASE_RENEWAL_RENT_CHANGE_PERCENT)
    return (rent * (100 + percent) / 100).quantize(CENT, rounding=ROUND_HALF_UP)


def due_notice_days(*, end_date: date, day: date) -> int | None:
    """The notice due on `day` for a lease ending on `end_date`: the smallest period in
    `PMS_LEASE_NOTICE_DAYS` that is at least the days left (None: no notice is due yet, or the
    lease is past its end). With the defaults, 60 from 60 days before the end, 30 from 30 days."""
    left = (end_date - day).days
    if left < 0:
        return None
    due = [days for days in settings.LEASE_NOTICE_DAYS if days >= left]
    return min(due) if due else None


# Recipients and notices


def lease_notice_recipients(lease: Lease) -> list[str]:
    """The user ids told about the lease's lifecycle: its tenants' active users, then its property's
    landlord and managers (each once)."""
    tenants = LeaseTenant.objects.filter(lease_id=lease.pk, tenant__user__is_active=True).order_by(
        "-is_primary", "created_at"
    )
    users = [str(user_id) for user_id in tenants.values_list("tenant__user_id", flat=True)]
    unit = lease.unit
    prop = unit.property if unit is not None else None
    if prop is not None:
        if prop.owner is not None and prop.owner.is_active:
            users.append(str(prop.owner_id))
        users += [
            str(link.user_id)
            for link in property_selectors.property_manager_list(property_id=prop.pk)
            if link.user.is_active
        ]
    return list(dict.fromkeys(users))


def _place(lease: Lease) -> str:
    return str(lease.unit) if lease.unit is not None else "a unit"


def _end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


def _notices(
    lease: Lease,
    *,
    type: str,
    title: str,
    message: str,
    priority: str,
    expires_at: datetime,
    about: Lease | None = None,
) -> list[Notice]:
    if expires_at <= timezone.now():
        return []  # raised by a catch-up run long after the fact: already out of date, nobody is told
    subject = about if about is not None else lease
    actions = ({"label": "View lease", "url": f"/api/v1/leases/{subject.pk}", "type": "link"},)
    return [
        Notice(
            user_id=user_id,
            type=type,
            title=title,
            message=message,
            reference_id=str(subject.pk),
            reference_type=REFERENCE_TYPE,
            priority=priority,
            actions=actions,
            expires_at=expires_at,
        )
        for user_id in lease_notice_recipients(lease)
    ]


def _record_sent(lease: Lease, notice: str, day: date) -> bool:
    """Write the `lease_notices` row; False when it exists (the notice went out before)."""
    try:
        with transaction.atomic():
            LeaseNotice.objects.create(lease=lease, notice=notice, due_on=day)
    except IntegrityError:
        return False
    return True


def _locked_active(lease_id: Any) -> Lease | None:
    """The lease under its row lock (its unit and property read with it), if it is active."""
    lease = Lease.objects.select_for_update(of=("self",)).select_related("unit__property__owner").filter(pk=lease_id)
    found = lease.first()
    return found if found is not None and found.lease_status == LeaseStatus.ACTIVE else None


# Services


def lease_notice_send(*, lease_id: Any, day: date) -> int | None:
    """Send the ending notice due on `day` for the active lease `lease_id` (see `due_notice_days`),
    once per lease and notice period; returns its period in days, or None when nothing was sent
    (none due, sent before, a later one already sent, or the lease is not active)."""
    with transaction.atomic():
        lease = _locked_active(lease_id)
        if lease is None:
            return None
        days = due_notice_days(end_date=lease.end_date, day=day)
        if days is None:
            return None
        later = [ending_notice_key(d) for d in settings.LEASE_NOTICE_DAYS if d < days]
        if LeaseNotice.objects.filter(lease=lease, notice__in=later).exists():
            return None
        if not _record_sent(lease, ending_notice_key(days), day):
            return None
        left = (lease.end_date - day).days
        notify_on_commit(
            *_notices(
                lease,
                type=NOTICE_ENDING,
                title="Lease ending soon",
                message=(
                    f"The lease of {_place(lease)} ends on {lease.end_date.isoformat()}, in {left} days; "
                    + (
                        "it renews automatically."
                        if lease.auto_renewal
                        else "it does not renew automatically: renew it or plan the move-out."
                    )
                ),
                priority="high" if days <= min(settings.LEASE_NOTICE_DAYS) else "medium",
                expires_at=_end_of(lease.end_date),
            )
        )
    logger.info("leasing: %s-day notice of lease %s sent for %s", days, lease_id, day)
    return days


def lease_end(*, lease_id: Any, day: date) -> Lease | None:
    """End the active lease `lease_id` if `day` is after its `end_date`: expired, or with
    `auto_renewal` renewed into a successor (returned) starting the day after `end_date`.
    Returns the expired lease or the successor; None when there was nothing to do (not
    active any more, not ended yet). Notifies the tenants, landlord and managers after commit."""
    with transaction.atomic():
        lease = _locked_active(lease_id)
        if lease is None or lease.end_date >= day:
            return None
        if not lease.auto_renewal or lease.unit_id is None:  # a lease of no unit has nothing to renew
            services.lease_update(lease=lease, changes={"lease_status": LeaseStatus.EXPIRED})
            _record_sent(lease, "expired", day)
            notify_on_commit(
                *_notices(
                    lease,
                    type=NOTICE_EXPIRED,
                    title="Lease expired",
                    message=f"The lease of {_place(lease)} ended on {lease.end_date.isoformat()}.",
                    priority="high",
                    expires_at=_end_of(lease.end_date + timedelta(days=AFTER_END_NOTICE_DAYS)),
                )
            )
            logger.info("leasing: lease %s expired (ended %s) as of %s", lease.pk, lease.end_date, day)
            return lease
        successor = _renew(lease)
        _record_sent(lease, "renewed", day)
        notify_on_commit(
            *_notices(
                lease,
                type=NOTICE_RENEWED,
                title="Lease renewed",
                message=(
                    f"The lease of {_place(lease)} renewed: {successor.start_date.isoformat()} to "
                    f"{successor.end_date.isoformat()}, monthly rent {successor.monthly_rent}."
                ),
                priority="medium",
                expires_at=_end_of(successor.start_date + timedelta(days=AFTER_END_NOTICE_DAYS)),
                about=successor,
            )
        )
    logger.info("leasing: lease %s renewed into %s as of %s", lease_id, successor.pk, day)
    return successor


def _renew(lease: Lease) -> Lease:
    """Mark `lease` renewed and create its active successor with the same unit, tenants and terms.

    Precondition: inside a transaction holding the lease's row lock, the lease active.
    """
    # The successor's creation settles the unit's occupancy (still occupied): no flicker to free.
    services.lease_update(lease=lease, changes={"lease_status": LeaseStatus.RENEWED}, follow_occupancy=False)
    start, end = successor_dates(lease)
    successor = services.lease_create(
        unit=lease.unit,  # type: ignore[arg-type]  # not None: lease_end expires a lease of no unit
        start_date=start,
        end_date=end,
        monthly_rent=renewed_rent(lease.monthly_rent),
        security_deposit=lease.security_deposit,
        lease_status=LeaseStatus.ACTIVE,
        lease_document_url=lease.lease_document_url,
        is_signed=lease.is_signed,
        special_terms=lease.special_terms,
        auto_renewal=True,
    )
    for link in LeaseTenant.objects.filter(lease_id=lease.pk).select_related("tenant").order_by("-is_primary"):
        services.lease_tenant_attach(lease=successor, tenant=link.tenant, is_primary=link.is_primary)
    return successor
