"""Test data made through the project's own models and services."""

import uuid
from typing import TYPE_CHECKING, Any

from apps.accounts.models import User, UserRole, UserType

DEFAULT_PASSWORD = "correct horse battery staple"


def make_user(
    *,
    user_type: str = UserType.TENANT,
    password: str | None = DEFAULT_PASSWORD,
    roles: tuple[str, ...] = (),
    **fields: Any,
) -> User:
    fields.setdefault("email", f"user-{uuid.uuid4().hex[:12]}@example.test")
    fields.setdefault("first_name", "Test")
    fields.setdefault("last_name", user_type.title())
    user = User.objects.create_user(password=password, user_type=user_type, **fields)
    for role in roles:
        UserRole.objects.create(user=user, role_name=role)
    return user


def make_property(*, owner: User, managers: tuple[User, ...] = (), **fields: Any) -> "Property":
    from apps.properties.models import Property, PropertyManager

    fields.setdefault("property_name", f"Property {uuid.uuid4().hex[:6]}")
    fields.setdefault("street_address", "1 Main St")
    fields.setdefault("city", "Springfield")
    fields.setdefault("state", "IL")
    fields.setdefault("zip_code", "62701")
    fields.setdefault("property_type", "apartment")
    prop = Property.objects.create(owner=owner, **fields)
    for manager in managers:
        PropertyManager.objects.create(property=prop, user=manager)
    return prop


def make_unit(*, property: "Property", **fields: Any) -> "Unit":
    from decimal import Decimal

    from apps.properties.models import Unit

    fields.setdefault("unit_number", uuid.uuid4().hex[:6])
    fields.setdefault("bedrooms", 2)
    fields.setdefault("bathrooms", Decimal("1.5"))
    fields.setdefault("square_footage", 850)
    fields.setdefault("monthly_rent", Decimal("1450.00"))
    return Unit.objects.create(property=property, **fields)


def make_lease(*, unit: "Unit", tenants: tuple[User, ...], status: str = "active", **fields: Any) -> "Lease":
    import datetime
    from decimal import Decimal

    from apps.leasing.models import Lease, LeaseTenant, Tenant

    fields.setdefault("start_date", datetime.date(2026, 1, 1))
    fields.setdefault("end_date", datetime.date(2026, 12, 31))
    fields.setdefault("monthly_rent", Decimal("1450.00"))
    fields.setdefault("security_deposit", Decimal("1450.00"))
    lease = Lease.objects.create(unit=unit, lease_status=status, **fields)
    for index, user in enumerate(tenants):
        tenant = Tenant.objects.filter(user=user).first() or Tenant.objects.create(
            user=user, date_of_birth=datetime.date(1990, 5, 17), ssn_last_four="1234"
        )
        LeaseTenant.objects.create(lease=lease, tenant=tenant, is_primary=index == 0)
    return lease


def make_conversation(*, participants: tuple[User, ...], **fields: Any) -> "Conversation":
    from apps.messaging.models import Conversation, ConversationParticipant

    conversation = Conversation.objects.create(**fields)
    for user in participants:
        ConversationParticipant.objects.create(conversation=conversation, user=user)
    return conversation


if TYPE_CHECKING:
    from apps.leasing.models import Lease
    from apps.messaging.models import Conversation
    from apps.properties.models import Property, Unit
