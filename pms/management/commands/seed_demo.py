"""Create a small believable demo world and print its logins.

    python manage.py seed_demo [--reset] [--password P]
    scripts/serve --demo          # the same, after the migrations, before the server starts

What it creates (every account's email ends in `@demo.pms.local`, the marker of the demo world):
- a landlord owning two properties, each with its property manager, twelve units in all;
- eight tenants on active leases, each lease with a monthly rent schedule (a recurring
  transaction from the first of this month, so the job worker makes this month's charges);
- three past charges: last month's rent paid, a water bill pending, last month's rent of
  another tenant late (with its late fee, by the finance service the daily job uses);
- six maintenance requests across the statuses, two work orders with vendors, and a
  `maintenance_staff` worker who has started one of them (work order in progress);
- four conversations of tenants with their manager, with messages in MongoDB (sent through
  the chat service, as `chat.send` does; two read to the end by their tenant, `chat.read`),
  and the notifications all of this raises (requests filed, status changes, late fee, payment,
  chat messages to offline users).
The worker is a tenant-type account holding the `maintenance_staff` role (roles add grants
platform-wide: apps/common/policy.py), as the role is given in the product.

The data (names, units, requests, messages, the logins) is in `pms/demo.py`.
Every write goes through the apps' services (events in the outbox, caches dropped, notices
delivered), acting as the user who would do it in the product: the landlord creates the
properties and leases, the tenants file requests and start conversations.

Idempotent: when the demo landlord exists the PostgreSQL part is skipped and said so; the chat
part always runs and sends only the messages not stored yet (each has a fixed `clientMessageId`,
which also makes a send stored once), so a run interrupted between the two is completed by the
next. `--reset` deletes the demo world first (through the admin's delete services; the demo's
chat messages and notifications in MongoDB directly: no service deletes those in bulk).

Passwords: one fixed password for every demo account (`DEMO_PASSWORD`), printed. It is demo data
for a local stack: a newcomer, the README and the web app's guide can all name the same login. So
that a well-known password never lands on a real deployment, a server without `PMS_DEBUG` gets
them only when `--password` is given explicitly.
"""

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User, UserType
from apps.accounts.services import Principal, user_admin_delete, user_create
from apps.finance import services as finance
from apps.finance.models import PaymentStatus
from apps.leasing import services as leasing
from apps.leasing.models import LeaseStatus
from apps.maintenance import services as maintenance
from apps.maintenance.models import MaintenanceStatus, Vendor, WorkOrderStatus
from apps.messaging import chat_notices
from apps.messaging import services as messaging
from apps.messaging.models import Conversation
from apps.properties import services as properties
from apps.properties.models import Property
from pms.demo import (
    CONVERSATIONS,
    DEMO_PASSWORD,
    DOMAIN,
    LANDLORD,
    MANAGERS,
    PROPERTIES,
    READ_BY_TENANT,
    REQUESTS,
    TENANTS,
    UNITS,
    VENDORS,
    WORKER,
    WORKER_ROLE,
    email,
    logins,
)
from realtime import connections

NOT_IN_PRODUCTION = (
    "seed_demo gives every demo account one well-known password; on a server without PMS_DEBUG "
    "pass --password explicitly."
)


def principal(user: User) -> Principal:
    """The user as a service caller (the seed acts as that user, as a login would make them)."""
    return Principal(
        user_id=str(user.pk),
        session_id="seed_demo",
        email=user.email,
        first_name=user.first_name,
        last_name=user.last_name,
        user_type=user.user_type,
        roles=tuple(user.roles.values_list("role_name", flat=True)),
        expires_at=timezone.now() + timedelta(hours=1),
    )


def add_months(day: date, months: int) -> date:
    """The same day `months` later (negative: earlier); days past the month's end clamp to 28."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, min(day.day, 28))


class Command(BaseCommand):
    help = "Create the demo world (two properties, tenants, leases, requests, conversations) and print its logins."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reset", action="store_true", help="delete the demo world first, then create it")
        parser.add_argument("--password", help=f"password of every demo account (default {DEMO_PASSWORD!r})")

    def handle(self, *args: Any, **options: Any) -> None:
        password = options["password"]
        if password is None:
            if not settings.DEBUG:
                raise CommandError(NOT_IN_PRODUCTION)
            password = DEMO_PASSWORD
        if options["reset"]:
            removed = reset()
            self.stdout.write(f"[pms] demo world removed ({removed} accounts)")
        landlord = User.objects.filter(email=email(LANDLORD[0])).first()
        if landlord is not None:
            self.stdout.write(f"[pms] demo world already present (@{DOMAIN} accounts); not created again")
            if not landlord.check_password(password):
                password = "the one given when the demo world was created (see --reset)"
        else:
            with transaction.atomic():
                build(password)
            self.stdout.write("[pms] demo world created: 2 properties, 12 units, 8 active leases")
        # async_to_sync, not asyncio.run: the ORM calls of the chat path run in this thread, on its connection.
        sent = async_to_sync(send_messages)()
        self.stdout.write(
            f"[pms] demo conversations: {len(CONVERSATIONS)}, {sent} messages sent now"
            f" (of {sum(len(lines) for _, _, lines in CONVERSATIONS)}; those stored before are kept)"
        )
        self.stdout.write(f"[pms] demo logins (password for all: {password}):")
        for login in logins():
            self.stdout.write(f"[pms]   {login.email:<32} {login.name:<18} {login.role}")


def build(password: str) -> None:
    """Every PostgreSQL write of the demo world, through the services; the caller holds the transaction."""
    today = timezone.localdate()

    def person(local: str, first: str, last: str, user_type: str, roles: tuple[str, ...] = ()) -> User:
        return user_create(
            data={
                "email": email(local),
                "password": password,
                "firstName": first,
                "lastName": last,
                "userType": user_type,
                "roles": list(roles),
            }
        )

    landlord = person(*LANDLORD)
    owner = principal(landlord)
    managers = [person(local, first, last, UserType.PROPERTY_MANAGER) for local, first, last in MANAGERS]
    worker = person(*WORKER, UserType.TENANT, roles=(WORKER_ROLE,))
    units: dict[tuple[int, str], Any] = {}
    props = []
    for index, (data, manager) in enumerate(zip(PROPERTIES, managers, strict=True)):
        prop = properties.property_create(caller=owner, data=data)
        properties.property_manager_add(caller=owner, prop=prop, user_id=manager.pk)
        props.append(prop)
        for number, bedrooms, bathrooms, feet, rent in UNITS[index]:
            units[(index, number)] = properties.unit_create(
                caller=owner,
                prop=prop,
                data={
                    "unitNumber": number,
                    "bedrooms": bedrooms,
                    "bathrooms": Decimal(bathrooms),
                    "squareFootage": feet,
                    "monthlyRent": Decimal(rent),
                },
            )
    this_month = today.replace(day=1)
    tenants: dict[str, tuple[User, Any]] = {}
    for n, (local, first, last, prop_index, unit_number, months) in enumerate(TENANTS):
        user = person(local, first, last, UserType.TENANT)
        unit = units[(prop_index, unit_number)]
        start = add_months(this_month, -months)
        lease = leasing.lease_create(
            unit=unit,
            start_date=start,
            end_date=add_months(start, 12) - timedelta(days=1),
            monthly_rent=unit.monthly_rent,
            security_deposit=unit.monthly_rent,
            lease_status=LeaseStatus.ACTIVE,
            is_signed=True,
        )
        # As an admin attaches a tenant (landlords in the product invite: apps/leasing/invitations.py).
        leasing.tenant_create(
            user_id=str(user.pk),
            lease=lease,
            is_primary=True,
            date_of_birth=date(1985 + n, 1 + n, 10 + n),
            ssn_last_four=f"{4100 + n}",
            employment_status="employed",
        )
        finance.recurring_transaction_create(
            caller=owner,
            lease_id=lease.pk,
            start_date=this_month,
            end_date=lease.end_date,
            transaction_type="rent",
            amount=lease.monthly_rent,
            frequency="monthly",
            day_of_month=1,
            description="Monthly rent",
        )
        tenants[local] = (user, lease)
    past_charges(owner, tenants, this_month, today)
    maintenance_world(owner, managers, worker, tenants, props)
    for local, subject, _ in CONVERSATIONS:
        user, lease = tenants[local]
        messaging.conversation_create(
            caller=principal(user),
            participant_ids=[managers[_property_of(local)].pk],
            subject=subject,
            property_id=lease.unit.property_id,
        )


def _property_of(tenant: str) -> int:
    return next(entry[3] for entry in TENANTS if entry[0] == tenant)


def past_charges(owner: Principal, tenants: dict[str, tuple[User, Any]], this_month: date, today: date) -> None:
    """Last month's rent paid (Ana), a water bill pending (Ben), last month's rent late (Gabe)."""
    last_month = add_months(this_month, -1)
    _, ana_lease = tenants["ana"]
    finance.transaction_create(
        caller=owner,
        lease_id=ana_lease.pk,
        property_id=None,
        transaction_type="rent",
        amount=ana_lease.monthly_rent,
        due_date=last_month,
        payment_status=PaymentStatus.PAID,
        payment_method="bank_transfer",
        description=f"Rent for {last_month:%B %Y}",
    )
    _, ben_lease = tenants["ben"]
    finance.transaction_create(
        caller=owner,
        lease_id=ben_lease.pk,
        property_id=None,
        transaction_type="utility",
        amount=Decimal("64.20"),
        due_date=today + timedelta(days=5),
        description="Water and sewer",
    )
    _, gabe_lease = tenants["gabe"]
    late = finance.transaction_create(
        caller=owner,
        lease_id=gabe_lease.pk,
        property_id=None,
        transaction_type="rent",
        amount=gabe_lease.monthly_rent,
        due_date=last_month,
        description=f"Rent for {last_month:%B %Y}",
    )
    # The late rule as the daily job applies it: status late, its one late fee, the tenant told.
    finance.charge_check_late(transaction_id=late.pk, day=today)


def maintenance_world(
    owner: Principal, managers: list[User], worker: User, tenants: dict[str, tuple[User, Any]], props: list[Any]
) -> None:
    """The requests of REQUESTS, filed by their tenants and moved by their property's manager."""
    staff = [principal(manager) for manager in managers]
    vendors = [maintenance.vendor_create(caller=owner, fields=fields) for fields in VENDORS]
    for local, category, priority, description, status, vendor_index in REQUESTS:
        user, lease = tenants[local]
        request = maintenance.maintenance_request_create(
            caller=principal(user),
            unit_id=lease.unit_id,
            fields={"category": category, "priority": priority, "description": description},
        )
        manager = staff[_property_of(local)]
        if vendor_index is not None:
            order = maintenance.work_order_create(
                caller=manager,
                request_id=request.pk,
                vendor_id=vendors[vendor_index].pk,
                fields={
                    "scheduled_date": timezone.localdate() + timedelta(days=1),
                    "status": WorkOrderStatus.SCHEDULED,
                },
            )
            if status == MaintenanceStatus.IN_PROGRESS:
                maintenance.work_order_update(
                    caller=principal(worker), work_order_id=order.pk, changes={"status": WorkOrderStatus.IN_PROGRESS}
                )
        # A work order moved the request from submitted to assigned; the manager moves it on from there.
        current = MaintenanceStatus.ASSIGNED if vendor_index is not None else MaintenanceStatus.SUBMITTED
        if status != current:
            maintenance.maintenance_request_update(caller=manager, request_id=request.pk, changes={"status": status})


async def send_messages() -> int:
    """The messages of CONVERSATIONS, each sent by its author through the chat service (stored once)."""
    from apps.messaging.services import achat_read, achat_send
    from pms.wiring import build_realtime

    realtime = build_realtime()  # not started: no sockets, only the chat service and presence
    found = await _conversations()
    sent = 0
    try:
        # "Stored once per clientMessageId" rests on this unique index (`ensure_mongo_indexes` makes it too).
        chat = messaging.chat_service(realtime)
        await chat.ensure_indexes()
        for local, subject, lines in CONVERSATIONS:
            found_pair = found.get((email(local), subject))
            if found_pair is None:
                continue
            conversation_id, manager_id, tenant_id = found_pair
            # Only the lines not stored yet: a repeat send would store nothing, but would still count
            # as a new message for chat notifications (a rerun must not notify anyone).
            history = await chat.history(conversation_id=conversation_id, limit=len(lines))
            stored = {message.get("clientMessageId") for message in history["messages"]}
            last: dict[str, Any] = {}
            for number, (who, text) in enumerate(lines):
                if f"demo-{local}-{number}" in stored:
                    continue
                last = await achat_send(
                    realtime=realtime,
                    conversation_id=conversation_id,
                    sender_id=tenant_id if who == "t" else manager_id,
                    message=text,
                    client_message_id=f"demo-{local}-{number}",
                    attachments=None,
                )
                sent += 1
            if local in READ_BY_TENANT and last:
                # A read receipt to see: the tenant has read the manager's last reply (`chat.read`).
                await achat_read(
                    realtime=realtime, conversation_id=conversation_id, reader_id=tenant_id, message_id=last["id"]
                )
        await chat_notices.noticer(realtime).drain()
    finally:
        await connections.aclose_loop_clients()
    return sent


async def _conversations() -> dict[tuple[str, str], tuple[str, str, str]]:
    """(tenant email, subject) -> (conversation id, the other participant's id, the tenant's id)."""
    from asgiref.sync import sync_to_async

    def read() -> dict[tuple[str, str], tuple[str, str, str]]:
        result = {}
        rows = Conversation.objects.filter(created_by__email__endswith=f"@{DOMAIN}").select_related("created_by")
        for conversation in rows:
            creator = conversation.created_by
            assert creator is not None
            others = conversation.participants.exclude(user_id=creator.pk).values_list("user_id", flat=True)
            if len(others) == 1:
                result[(creator.email, conversation.subject or "")] = (
                    str(conversation.pk),
                    str(others[0]),
                    str(creator.pk),
                )
        return result

    return await sync_to_async(read)()


def reset() -> int:
    """Delete the demo world (the admin's delete services, so events and access changes follow) and its
    MongoDB chat messages and notifications; returns how many accounts were removed."""
    users = list(User.objects.filter(email__endswith=f"@{DOMAIN}"))
    conversation_ids = [
        str(pk)
        for pk in Conversation.objects.filter(participants__user__in=users).values_list("pk", flat=True).distinct()
    ]
    with transaction.atomic():
        for conversation in Conversation.objects.filter(pk__in=conversation_ids):
            messaging.conversation_admin_delete(conversation=conversation)
        for prop in Property.objects.filter(owner__in=users):
            properties.property_admin_delete(prop=prop)
        # The demo's vendors (name and 555-01xx phone both match), unless real work orders use them since.
        for fields in VENDORS:
            Vendor.objects.filter(
                company_name=fields["company_name"], phone=fields["phone"], work_orders__isnull=True
            ).delete()
        for user in users:
            user_admin_delete(user=user)
    async_to_sync(_forget_documents)(conversation_ids, [str(user.pk) for user in users])
    return len(users)


async def _forget_documents(conversation_ids: list[str], user_ids: list[str]) -> None:
    """The demo's chat messages and notifications in MongoDB (no service deletes them in bulk)."""
    try:
        database = connections.get_mongo()[connections.current_settings().mongo_database]
        await database["chat_messages"].delete_many({"conversationId": {"$in": conversation_ids}})
        await database["notifications"].delete_many({"userId": {"$in": user_ids}})
    finally:
        await connections.aclose_loop_clients()
