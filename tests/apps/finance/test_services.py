"""The finance services check the caller themselves (as maintenance's do), so every path that
writes through them (HTTP, admin, jobs) gets the same answers as the API's matrix."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.services import Principal
from apps.finance import services
from apps.finance.models import LateFee, Transaction
from apps.leasing.models import Lease
from apps.leasing.selectors import READ_ONLY
from realtime.errors import ProtocolError
from tests.apps.api_world import World

pytestmark = pytest.mark.django_db


def as_caller(user: User) -> Principal:
    return Principal(
        user_id=str(user.pk),
        session_id="s",
        email=user.email,
        first_name="",
        last_name="",
        user_type=user.user_type,
        roles=(),
        expires_at=timezone.now(),
    )


def test_transaction_writes_refuse_a_tenant_before_any_lookup_and_hide_others_objects(world: World) -> None:
    lease = Lease.objects.get(unit=world.unit, lease_status="active")
    for user, code in ((world.tenant, "forbidden"), (world.other_landlord, "not_found")):
        with pytest.raises(ProtocolError) as refused:
            services.transaction_create(
                caller=as_caller(user),
                lease_id=lease.pk,
                property_id=None,
                transaction_type="rent",
                amount=Decimal("10.00"),
            )
        assert refused.value.code == code
        if code == "forbidden":
            assert refused.value.message == READ_ONLY
    assert not Transaction.objects.exists()
    created = services.transaction_create(
        caller=as_caller(world.manager),
        lease_id=lease.pk,
        property_id=None,
        transaction_type="rent",
        amount=Decimal("10.00"),
        due_date=datetime.date(2026, 3, 1),
    )
    assert created.property_id == world.prop.pk


def test_late_fee_waive_is_by_the_caller_and_only_once(world: World) -> None:
    lease = Lease.objects.get(unit=world.unit, lease_status="active")
    row = Transaction.objects.create(lease=lease, property=world.prop, transaction_type="rent", amount=Decimal("5"))
    fee = services.late_fee_create(
        caller=as_caller(world.landlord), transaction_id=row.pk, amount=Decimal("25.00"), days_late=3
    )
    waived = services.late_fee_waive(caller=as_caller(world.manager), late_fee_id=fee.pk, reason="first time")
    assert waived.is_waived and waived.waived_by_id == world.manager.pk and waived.waive_reason == "first time"
    with pytest.raises(ProtocolError) as again:
        services.late_fee_waive(caller=as_caller(world.landlord), late_fee_id=fee.pk, reason="twice")
    assert again.value.code == "conflict"
    assert LateFee.objects.get(pk=fee.pk).waive_reason == "first time"
