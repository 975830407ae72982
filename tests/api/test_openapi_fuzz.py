"""Schema-driven fuzz run of the HTTP API (issue 4): schemathesis generates requests for every
operation of `/api/v1/openapi.json`, sends them to a real uvicorn process (the production command
line, tests/e2e/conftest.py) over real HTTP, and checks each response:

- `not_a_server_error`: no 5xx, ever;
- `status_code_conformance` and `response_schema_conformance`: the status is declared and the
  body matches the schema declared for it. Errors are declared once for the whole API
  (pms/openapi.py: 401/404/422/429 where they apply and `default` with the shared error body),
  so an undeclared status passes only with our `{"error": {...}}` body.

Why a real server and not schemathesis' in-process ASGI transport: that transport starts an event
loop per request (an anyio blocking portal), while the views' Redis and MongoDB clients are bound
to one loop (realtime/connections.py; the same leak pyproject.toml has to silence for Django's test
Client). Under uvicorn the views run exactly as in production: one loop, the ORM in its threads,
rows committed in the test database (`transactional_db`), the server stopped before it is flushed.
A server start costs ~1 s.

The run is the same for two callers, an admin (sees and may change everything) and a tenant
(sees almost nothing, so mostly 404s): each runs every operation with a fixed budget of examples
that fit the schema, then a few that break it (schemathesis' negative mode: these must get a 4xx),
derandomized (same cases on every run), reads first, then writes, then deletes, so seeded rows are
there for most operations. Ids in the path, the query and the body (`unitId` ...) are often
replaced by ids of seeded rows, so the fuzzer reaches existing objects, not only 404s. Every
operation runs even after one fails; the test fails at the end listing each failing operation
with the failed check, the response and a curl line to reproduce it (the server log follows).

Local knobs: PMS_FUZZ_MAX_EXAMPLES (default 12 per operation and caller; 50 finds nothing more
today, in ~4.5 min), PMS_FUZZ_NEGATIVE_EXAMPLES (default 5), PMS_FUZZ_OPERATIONS
(a regular expression over "METHOD /path" labels, to run a few operations), PMS_FUZZ_VERBOSE=1
(print the statuses each operation answered, to see what the run reaches).
"""

import datetime
import importlib
import os
import pkgutil
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from apps.accounts.models import User
from apps.finance.models import LateFee, RecurringTransaction, Transaction
from apps.hud.models import HousingAuthority, HudApplication, HudForm, HudProgram, PropertyHudProgram
from apps.leasing.models import LeaseDocument, Tenant
from apps.maintenance.models import MaintenanceImage, MaintenanceRequest, Vendor, WorkOrder
from apps.properties.models import Amenity
from tests.e2e.conftest import (  # noqa: F401  (fixtures: a real uvicorn against the test database)
    ServerFactory,
    ServerProcess,
    login,
    server_env,
    start_servers,
)
from tests.factories import DEFAULT_PASSWORD, make_conversation, make_lease, make_property, make_unit, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def import_now(*packages: str) -> None:
    """Import every module of `packages` now, while pytest collects (one thread, shallow stack).

    pytest rewrites (re-parses) each module of a package that ships a pytest plugin, as
    schemathesis and hypothesis do, and both import much lazily, mid-test. CPython 3.11's AST
    converter can then fail with "SystemError: AST constructor recursion depth mismatch"
    (cpython#106905, pytest#10763: rare, when parses overlap in a threaded process); it did once
    in the full suite, importing schemathesis' OpenAPI modules inside this test.
    """
    for name in packages:
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, f"{name}."):
            importlib.import_module(module.name)


import_now(
    "schemathesis.core",
    "schemathesis.engine",
    "schemathesis.generation",
    "schemathesis.openapi",
    "schemathesis.specs.openapi",
    "schemathesis.transport",
    "schemathesis.wfc",
    "hypothesis.strategies._internal",
)

# The CPython 3.11 AST bug above can still strike inside hypothesis mid-run (seen once in CI:
# "INTERESTING from SystemError at .../ast.py"). That is the fuzzing tool failing, not the server
# under test, so such an operation is run again; any failure that names our server still counts.
TOOL_CRASH_RETRIES = 2


def tool_crashed(outcome: "Outcome") -> bool:
    return outcome.error is not None and "SystemError" in outcome.error and "/ast.py" in outcome.error


MAX_EXAMPLES = int(os.environ.get("PMS_FUZZ_MAX_EXAMPLES", "12"))
NEGATIVE_EXAMPLES = int(os.environ.get("PMS_FUZZ_NEGATIVE_EXAMPLES", "5"))
OPERATION_FILTER = re.compile(os.environ.get("PMS_FUZZ_OPERATIONS", ".*"))
VERBOSE = os.environ.get("PMS_FUZZ_VERBOSE") == "1"
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
REQUEST_TIMEOUT = 10.0
# A generated id (path, query, body) becomes a seeded row's id KNOWN_ID_WEIGHT times in
# KNOWN_ID_WEIGHT + 1 when there is one seeded row, and more often when there are several.
KNOWN_ID_WEIGHT = 3

# Operations left out of the run, each with its reason. Keep this empty unless an operation truly
# cannot be fuzzed (or is owned by work in progress: then with a TODO naming it).
EXCLUDED: dict[str, str] = {}  # every operation is fuzzed

# Logging out the caller's session would leave the rest of the run unauthenticated: it is fuzzed
# last, each example with a session of its own. (Seeded `user_id`s never name the caller either.)
LOGOUT = "POST /api/v1/auth/logout"
# Refreshing rotates the caller's session (its token ends after a short grace): it too runs each
# example with a session of its own.
REFRESH = "POST /api/v1/auth/refresh"


@dataclass
class Seed:
    """Ids of rows the fuzzer can reach, by parameter name (`unit_id`; `unitId` in a body or query)."""

    admin: User
    tenant: User
    ids: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, *values: object) -> None:
        self.ids.setdefault(name, []).extend(str(value) for value in values)


def seed_world() -> Seed:
    """An admin, a landlord with a managed property, a unit leased by a tenant, and one row of each
    entity reachable by id; plus another owner's property the tenant cannot see."""
    today = datetime.date(2026, 3, 1)
    admin = make_user(user_type="admin", roles=("admin",))
    tenant = make_user()
    # Users who never log in: no password at all.
    landlord = make_user(user_type="landlord", password=None)
    manager = make_user(user_type="property_manager", password=None, roles=("maintenance",))
    other_landlord = make_user(user_type="landlord", password=None)
    other_tenant = make_user(password=None)

    prop = make_property(owner=landlord, managers=(manager,))
    unit = make_unit(property=prop)
    vacant_unit = make_unit(property=prop)
    lease = make_lease(unit=unit, tenants=(tenant,))
    other_prop = make_property(owner=other_landlord, state="CA", city="Fresno")
    other_unit = make_unit(property=other_prop)
    other_lease = make_lease(unit=other_unit, tenants=(other_tenant,))
    tenant_record = Tenant.objects.get(user=tenant)

    amenity = Amenity.objects.create(name="Pool", category="community")
    document = LeaseDocument.objects.create(
        lease=lease, document_type="lease", document_url="leases/1.pdf", uploaded_by=landlord
    )
    charge = Transaction.objects.create(
        lease=lease, property=prop, transaction_type="rent", amount=Decimal("1450.00"), due_date=today
    )
    recurring = RecurringTransaction.objects.create(
        lease=lease,
        transaction_type="rent",
        amount=Decimal("1450.00"),
        frequency="monthly",
        day_of_month=1,
        start_date=today,
    )
    late_fee = LateFee.objects.create(transaction=charge, amount=Decimal("50.00"), days_late=6)
    request = MaintenanceRequest.objects.create(
        unit=unit, tenant=tenant_record, category="plumbing", description="The kitchen sink drips."
    )
    image = MaintenanceImage.objects.create(request=request, image_url="maintenance/1.jpg")
    vendor = Vendor.objects.create(company_name="Drip Fixers", phone="555-0100", service_category="plumbing")
    work_order = WorkOrder.objects.create(request=request, vendor=vendor, assigned_by=manager)
    authority = HousingAuthority.objects.create(name="Springfield Housing Authority", state="IL")
    program = HudProgram.objects.create(program_name="Housing Choice Voucher", program_code="HCV")
    PropertyHudProgram.objects.create(property=prop, program=program, authority=authority)
    application = HudApplication.objects.create(
        tenant=tenant_record, program=program, authority=authority, application_date=today
    )
    form = HudForm.objects.create(application=application, form_type="income", form_number="HUD-50058")
    conversation = make_conversation(
        participants=(admin, tenant, manager), subject="Sink", property=prop, created_by=tenant
    )

    seed = Seed(admin=admin, tenant=tenant)
    # `user_id` never names the caller (a PATCH or DELETE of oneself would end the run's session).
    seed.add("user_id", landlord.id, manager.id, other_tenant.id)
    seed.add("role_name", "maintenance", "admin")
    seed.add("property_id", prop.id, other_prop.id)
    seed.add("state_code", "IL", "CA")
    seed.add("unit_id", unit.id, vacant_unit.id, other_unit.id)
    seed.add("amenity_id", amenity.id)
    seed.add("tenant_id", tenant_record.id)
    seed.add("lease_id", lease.id, other_lease.id)
    seed.add("document_id", document.id)
    seed.add("transaction_id", charge.id)
    seed.add("recurring_id", recurring.id)
    seed.add("late_fee_id", late_fee.id)
    seed.add("request_id", request.id)
    seed.add("image_id", image.id)
    seed.add("vendor_id", vendor.id)
    seed.add("work_order_id", work_order.id)
    seed.add("authority_id", authority.id)
    seed.add("program_id", program.id)
    seed.add("application_id", application.id)
    seed.add("form_id", form.id)
    seed.add("conversation_id", conversation.id)
    return seed


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _run_order(label: str) -> tuple[int, str]:
    """Reads, then writes, then deletes (so seeded rows exist for most of the run), then logout."""
    method = label.split(" ", 1)[0]
    rank = {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}.get(method, 1)
    return (3 if label == LOGOUT else rank, label)


@dataclass
class Outcome:
    label: str
    calls: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    samples: dict[int, str] = field(default_factory=dict)  # one response body per status
    error: str | None = None


def fuzz_operation(
    operation: Any,
    *,
    base_url: str,
    token: str,
    server: ServerProcess,
    seed: Seed,
    session: requests.Session,
    password_login: tuple[str, str],
    mode: GenerationMode = GenerationMode.POSITIVE,
    max_examples: int = MAX_EXAMPLES,
) -> Outcome:
    outcome = Outcome(operation.label if mode is GenerationMode.POSITIVE else f"{operation.label} (negative)")
    path_names = [p.name for p in operation.path_parameters]

    @hypothesis.settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=False,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def run(case: Any, data: st.DataObject) -> None:
        def maybe_known(container: dict[str, Any], key: str, name: str) -> None:
            known = seed.ids.get(name, [])
            if known and isinstance(container.get(key), str):
                choice = data.draw(st.sampled_from([None] + known * KNOWN_ID_WEIGHT), label=key)
                if choice is not None:
                    container[key] = choice

        for name in path_names:
            maybe_known(case.path_parameters, name, name)
        # Ids in the body and the query (`unitId`, `leaseId` ...) too, so creates can succeed.
        for container in (case.body, case.query):
            if isinstance(container, dict):
                for key in list(container):
                    maybe_known(container, key, snake_case(key))
        caller_token = token
        if operation.label in (LOGOUT, REFRESH):  # a session of its own, so the caller's stays valid
            caller_token = str(login(server, *password_login)["token"])
        response = case.call_and_validate(
            base_url=base_url,
            session=session,
            headers={"Authorization": f"Bearer {caller_token}"},
            checks=CHECKS,
            timeout=REQUEST_TIMEOUT,
        )
        outcome.calls += 1
        outcome.statuses[response.status_code] = outcome.statuses.get(response.status_code, 0) + 1
        outcome.samples.setdefault(response.status_code, response.text[:300])

    try:
        run()
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001  (reported at the end; all operations run)
        outcome.error = f"{type(exc).__name__}: {exc}"
    return outcome


def operations(schema: Any) -> Iterator[Any]:
    found = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in EXCLUDED or not OPERATION_FILTER.search(operation.label):
            continue
        found.append(operation)
    yield from sorted(found, key=lambda op: _run_order(op.label))


@pytest.fixture
def fuzz_server(start_servers: ServerFactory, server_env: dict[str, str]) -> ServerProcess:  # noqa: F811
    """One uvicorn process with the rate limits out of the fuzzer's way (they have tests of their own),
    hashing passwords with the suite's fast hasher (tests/api/fuzz_settings.py says why), as this
    module's seeded users do (tests/conftest.py `fast_password_hashing`, not e2e's production one)."""
    server_env.update(
        PMS_API_RATE_LIMIT="1000000",
        PMS_LOGIN_RATE_LIMIT="1000000",
        DJANGO_SETTINGS_MODULE="tests.api.fuzz_settings",
    )
    [server] = start_servers(1)
    return server


@pytest.mark.timeout(600)
@pytest.mark.parametrize("caller", ["admin", "tenant"])
def test_openapi_fuzz(caller: str, fuzz_server: ServerProcess, capsys: pytest.CaptureFixture[str]) -> None:
    seed = seed_world()
    user: User = getattr(seed, caller)
    token = str(login(fuzz_server, user.email)["token"])

    schema = schemathesis.openapi.from_url(f"{fuzz_server.http_url}/api/v1/openapi.json", config=schemathesis.Config())
    started = time.monotonic()
    outcomes = []
    budgets = [(GenerationMode.POSITIVE, MAX_EXAMPLES), (GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES)]
    with requests.Session() as session:
        for operation in operations(schema):
            for mode, max_examples in budgets:
                if max_examples > 0:
                    for _attempt in range(TOOL_CRASH_RETRIES + 1):
                        outcome = fuzz_operation(
                            operation,
                            base_url=fuzz_server.http_url,
                            token=token,
                            server=fuzz_server,
                            seed=seed,
                            session=session,
                            password_login=(user.email, DEFAULT_PASSWORD),
                            mode=mode,
                            max_examples=max_examples,
                        )
                        if not tool_crashed(outcome):
                            break
                    outcomes.append(outcome)
    elapsed = time.monotonic() - started

    calls = sum(o.calls for o in outcomes)
    labels = {o.label.removesuffix(" (negative)") for o in outcomes}
    with capsys.disabled():
        print(
            f"\nopenapi fuzz as {caller}: {len(labels)} operations ({len(EXCLUDED)} excluded), "
            f"{calls} requests, {elapsed:.1f} s"
        )
        if VERBOSE:
            for o in outcomes:
                print(f"  {o.label}: {dict(sorted(o.statuses.items()))}{' FAILED' if o.error else ''}")
                for status, sample in sorted(o.samples.items()):
                    if status >= 400:
                        print(f"    {status}: {sample}")
    assert outcomes, "no operation matched"
    failed = [o for o in outcomes if o.error is not None]
    assert not failed, f"{len(failed)} of {len(outcomes)} operations failed as {caller}:\n\n" + "\n\n".join(
        f"=== {o.label}\n{o.error}" for o in failed
    )
