"""Create the load tests' users, conversations and session tokens; print them as JSON.

    python manage.py seed_loadtest_users --users 5000 --watchers 1000 --pairs 200 --out tokens.json

`loadtests/` imports nothing from the code base, so this command is its only way in:
the benchmark and the locustfile run it as a subprocess and read the JSON it writes.

What it creates (emails `<prefix>-<kind>-<n>@loadtest.invalid`, all with `--password`):
- `--users` tenants: the idle sockets (each subscribes to its own `notifications:{userId}`);
- `--watchers` admins: fan-out and recovery subscribers (admins may subscribe to any
  chat topic without being participants, so a reconnect storm of watchers does not
  also fan presence changes out to the conversation);
- `--pairs` conversations of one tenant and one property manager (chat rooms);
- one "broadcast" conversation with `--publishers` participants (recovery scenario);
- `--groups` tenants who each talk with 3 property managers (a pool of one manager per 10
  such tenants), one conversation each: the realistic connect (notifications + their 3
  conversations); the JSON lists them under `groups` with their conversation ids;
- with `--leases N` (locust: work for the job worker), for the first N pairs: a property owned by
  one landlord (`<prefix>-landlord-0`) and managed by the pair's manager, a unit, an active
  two-year lease of the pair's tenant that began on the 1st two months ago, its monthly rent as
  a recurring transaction (day of month 1-28 by pair), an unpaid utility charge 20 days overdue
  and a maintenance request the tenant filed. The pairs in the JSON then carry `leaseId` and
  `requestId`. Today's runs of the daily jobs `finance.recurring_charges` and
  `finance.late_payments` are forgotten (their `daily_job_runs` rows of today deleted), so the
  worker's next tick runs them over the new schedules: the rent periods since the lease began
  are charged, the overdue charge becomes late with its fee, and the tenants are notified. Both
  jobs are idempotent per period and per charge (apps/finance/jobs.py), so running them again
  today makes nothing twice.

Every user gets one session, created like `POST /api/v1/auth/login` creates one
(SHA-256 of the secret in `sessions`, the session cached at `user:session:{id}`), and
its bearer token is printed. Logging in over HTTP would be the same, except that
PBKDF2 makes 15,000 logins take hours on two cores: that is why the tokens are minted
here. All users share one password hash (one salt): load-test accounts only.
"""

import asyncio
import json
import secrets
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Session, User, UserType
from apps.accounts.services import Principal, hash_secret
from apps.finance.models import PaymentStatus, RecurringTransaction, Transaction
from apps.jobs.models import DailyJobRun
from apps.leasing.models import Lease, LeaseStatus, LeaseTenant, Tenant
from apps.maintenance.models import MaintenanceRequest
from apps.messaging.models import Conversation, ConversationParticipant
from apps.properties.models import Property, PropertyManager, Unit
from realtime.connections import aclose_loop_clients

DOMAIN = "loadtest.invalid"
# The daily jobs a `--leases` seed has new work for; both are idempotent, so rerunning today is safe.
RERUN_TODAY = ("finance.recurring_charges", "finance.late_payments")
RENT = Decimal("1450.00")
GROUP_SIZE = 3  # conversations of each `--groups` tenant


def _emails(prefix: str, kind: str, count: int) -> list[str]:
    return [f"{prefix}-{kind}-{n}@{DOMAIN}" for n in range(count)]


class Command(BaseCommand):
    help = "Create load-test users, conversations and session tokens; write them as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--users", type=int, default=1000, help="idle tenants (one socket each)")
        parser.add_argument("--watchers", type=int, default=1000, help="admin subscribers for fan-out/recovery")
        parser.add_argument("--pairs", type=int, default=200, help="tenant + manager conversations")
        parser.add_argument("--publishers", type=int, default=4, help="participants of the broadcast conversation")
        parser.add_argument("--groups", type=int, default=0, help="tenants in 3 conversations each (connects)")
        parser.add_argument("--leases", type=int, default=0, help="pairs whose tenant gets a lease with rent")
        parser.add_argument("--password", default="loadtest-password-1")
        parser.add_argument("--prefix", default="lt")
        parser.add_argument("--out", help="write the JSON here (default: stdout)")

    def handle(self, *args: Any, **options: Any) -> None:
        prefix, password = options["prefix"], options["password"]
        password_hash = make_password(password)
        kinds: list[tuple[str, int, str]] = [
            ("user", options["users"], UserType.TENANT),
            ("watch", options["watchers"], UserType.ADMIN),
            ("tenant", options["pairs"], UserType.TENANT),
            ("manager", options["pairs"], UserType.PROPERTY_MANAGER),
            ("pub", options["publishers"], UserType.TENANT),
            ("group", options["groups"], UserType.TENANT),
            ("groupmgr", (options["groups"] + 9) // 10, UserType.PROPERTY_MANAGER),
            ("landlord", 1 if options["leases"] > 0 else 0, UserType.LANDLORD),
        ]
        users: dict[str, list[User]] = {}
        with transaction.atomic():
            for kind, count, user_type in kinds:
                emails = _emails(prefix, kind, count)
                User.objects.bulk_create(
                    [
                        User(
                            email=e,
                            password=password_hash,
                            first_name=kind.title(),
                            last_name=e.split("@")[0],
                            user_type=user_type,
                        )
                        for e in emails
                    ],
                    ignore_conflicts=True,
                    batch_size=2000,
                )
                by_email = {u.email: u for u in User.objects.filter(email__in=emails)}
                users[kind] = [by_email[e] for e in emails]
            conversations = self._conversations(prefix, users)
            leases = self._leases(prefix, users, options["leases"])
            tokens, principals = self._sessions([u for group in users.values() for u in group])
        asyncio.run(self._cache(principals))

        def person(user: User) -> dict[str, str]:
            return {"id": str(user.pk), "email": user.email, "token": tokens[user.pk]}

        def pair(n: int, tenant: User, manager: User) -> dict[str, Any]:
            return {"conversationId": str(conversations[f"pair-{n}"].pk), "a": person(tenant), "b": person(manager)}

        result = {
            "password": password,
            "users": [person(u) for u in users["user"]],
            "watchers": [person(u) for u in users["watch"]],
            "pairs": [
                pair(n, t, m) | leases.get(n, {})
                for n, (t, m) in enumerate(zip(users["tenant"], users["manager"], strict=True))
            ],
            "broadcast": {
                "conversationId": str(conversations["broadcast"].pk),
                "publishers": [person(u) for u in users["pub"]],
            },
            "groups": [
                person(u) | {"conversations": [str(conversations[f"group-{n}-{k}"].pk) for k in range(GROUP_SIZE)]}
                for n, u in enumerate(users["group"])
            ],
        }
        text = json.dumps(result)
        if options["out"]:
            Path(options["out"]).write_text(text)
            self.stderr.write(
                f"[pms] load-test data: {sum(len(v) for v in users.values())} users, "
                f"{len(conversations)} conversations, {len(leases)} leases -> {options['out']}"
            )
        else:
            self.stdout.write(text)

    def _conversations(self, prefix: str, users: dict[str, list[User]]) -> dict[str, Conversation]:
        wanted = {f"pair-{n}": [t, m] for n, (t, m) in enumerate(zip(users["tenant"], users["manager"], strict=True))}
        wanted["broadcast"] = list(users["pub"])
        managers = users["groupmgr"]
        for n, tenant in enumerate(users["group"]):
            for k in range(GROUP_SIZE):
                wanted[f"group-{n}-{k}"] = [tenant, managers[(n * GROUP_SIZE + k) % len(managers)]]
        subjects = {name: f"{prefix}:{name}" for name in wanted}
        existing = {c.subject: c for c in Conversation.objects.filter(subject__in=subjects.values())}
        missing = [Conversation(subject=s) for s in subjects.values() if s not in existing]
        Conversation.objects.bulk_create(missing, batch_size=2000)
        existing.update({c.subject: c for c in missing})
        result = {name: existing[subject] for name, subject in subjects.items()}
        ConversationParticipant.objects.bulk_create(
            [
                ConversationParticipant(conversation=result[name], user=u)
                for name, members in wanted.items()
                for u in members
            ],
            ignore_conflicts=True,
            batch_size=2000,
        )
        return result

    def _leases(self, prefix: str, users: dict[str, list[User]], count: int) -> dict[int, dict[str, str]]:
        """For the first `count` pairs: property, unit, active lease with monthly rent, an overdue
        charge, a maintenance request (once per prefix); then today's rerun of the jobs that act on
        them. Returns `leaseId` and `requestId` by pair number."""
        if count <= 0:
            return {}
        today = timezone.now().date()
        months = today.year * 12 + today.month - 1 - 2
        start = date(months // 12, months % 12 + 1, 1)
        end = date(start.year + 2, start.month, 1) - timedelta(days=1)
        landlord = users["landlord"][0]
        seeded: dict[int, dict[str, str]] = {}
        for n, (tenant_user, manager) in enumerate(zip(users["tenant"][:count], users["manager"][:count], strict=True)):
            prop, created = Property.objects.get_or_create(
                property_name=f"{prefix} property {n}",
                owner=landlord,
                defaults={
                    "street_address": f"{n} Load Street",
                    "city": "Springfield",
                    "state": "IL",
                    "zip_code": "62701",
                    "property_type": "apartment",
                },
            )
            if created:
                PropertyManager.objects.create(property=prop, user=manager)
            unit, _ = Unit.objects.get_or_create(
                property=prop,
                unit_number="1",
                defaults={"bedrooms": 2, "bathrooms": Decimal("1.0"), "square_footage": 800, "monthly_rent": RENT},
            )
            tenant, _ = Tenant.objects.get_or_create(
                user=tenant_user, defaults={"date_of_birth": date(1990, 5, 17), "ssn_last_four": "0000"}
            )
            lease = Lease.objects.filter(unit=unit, lease_status=LeaseStatus.ACTIVE).first()
            if lease is None:
                lease = Lease.objects.create(
                    unit=unit,
                    lease_status=LeaseStatus.ACTIVE,
                    start_date=start,
                    end_date=end,
                    monthly_rent=RENT,
                    security_deposit=RENT,
                )
                LeaseTenant.objects.create(lease=lease, tenant=tenant, is_primary=True)
                RecurringTransaction.objects.create(
                    lease=lease,
                    transaction_type="rent",
                    amount=RENT,
                    frequency="monthly",
                    day_of_month=1 + n % 28,
                    start_date=start,
                    end_date=end,
                )
                Transaction.objects.create(
                    lease=lease,
                    property=prop,
                    transaction_type="utility",
                    amount=Decimal("84.20"),
                    due_date=today - timedelta(days=20),
                    payment_status=PaymentStatus.PENDING,
                    description="Water, last quarter (load-test seed)",
                )
                MaintenanceRequest.objects.create(
                    unit=unit, tenant=tenant, category="plumbing", description="The kitchen tap drips"
                )
            request = MaintenanceRequest.objects.filter(unit=unit).order_by("created_at").first()
            assert request is not None
            seeded[n] = {"leaseId": str(lease.pk), "requestId": str(request.pk)}
        DailyJobRun.objects.filter(job__in=RERUN_TODAY, day=today).delete()
        return seeded

    def _sessions(self, people: list[User]) -> tuple[dict[Any, str], list[tuple[Principal, str]]]:
        now = timezone.now()
        expires = now + timedelta(seconds=settings.SESSION_TOKEN_TTL_SECONDS)
        secrets_by_user = {u.pk: secrets.token_urlsafe(32) for u in people}
        sessions = [
            Session(user=u, token=hash_secret(secrets_by_user[u.pk]), expires_at=expires, user_agent="loadtest seed")
            for u in people
        ]
        Session.objects.bulk_create(sessions, batch_size=2000)
        tokens = {s.user.pk: f"{s.pk}.{secrets_by_user[s.user.pk]}" for s in sessions}  # type: ignore[union-attr]
        principals = [
            (
                Principal(
                    user_id=str(u.pk),
                    session_id=str(s.pk),
                    email=u.email,
                    first_name=u.first_name,
                    last_name=u.last_name,
                    user_type=u.user_type,
                    roles=(),
                    expires_at=expires,
                ),
                s.token,
            )
            for u, s in zip(people, sessions, strict=True)
        ]
        return tokens, principals

    async def _cache(self, principals: list[tuple[Principal, str]]) -> None:
        # What a login does after creating the session (apps.accounts.services), so the
        # first socket of each token authenticates from Redis, as it would after a login.
        from apps.accounts.services import _cache_session

        try:
            for start in range(0, len(principals), 500):
                await asyncio.gather(*(_cache_session(p, h) for p, h in principals[start : start + 500]))
        finally:
            await aclose_loop_clients()
