"""The project's migrations unapply to zero and apply again, recreating the seed's tables."""

import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

FIXTURE_PATH = Path(__file__).parent / "fixtures" / "seed_schema.json"
SEED = json.loads(FIXTURE_PATH.read_text(encoding="utf-8"))
SEED_TABLES = {table["name"] for table in SEED["tables"]}

# Project apps, dependencies first. `migrate <app> zero` also unapplies every migration
# that depends on the app (admin's log entries point at accounts.User); admin goes first
# so the order is explicit rather than implied.
PROJECT_APPS = [
    "accounts",
    "properties",
    "leasing",
    "finance",
    "maintenance",
    "subscriptions",
    "hud",
    "messaging",
    "events",
    "jobs",
]


def seed_tables_present() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
        return {name for (name,) in cursor.fetchall()} & SEED_TABLES


def applied_project_migrations() -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT app, name FROM django_migrations WHERE app = ANY(%s) ORDER BY app, name",
            [PROJECT_APPS],
        )
        return list(cursor.fetchall())


@pytest.mark.timeout(300)
@pytest.mark.django_db(transaction=True)
def test_project_migrations_unapply_to_zero_and_reapply_the_seed_tables() -> None:
    assert seed_tables_present() == SEED_TABLES, "precondition: the migrated test DB has all 30"
    try:
        call_command("migrate", "admin", "zero", interactive=False, verbosity=0)
        for app in reversed(PROJECT_APPS):
            call_command("migrate", app, "zero", interactive=False, verbosity=0)

        left = sorted(seed_tables_present())
        assert not left, f"seed tables still present after migrating to zero: {left}"
        still_applied = applied_project_migrations()
        assert not still_applied, f"migrations still recorded as applied: {still_applied}"

        call_command("migrate", interactive=False, verbosity=0)

        missing = sorted(SEED_TABLES - seed_tables_present())
        assert not missing, f"seed tables not recreated by migrating forward: {missing}"
        assert len(seed_tables_present()) == 30
    finally:
        # Leave the database fully migrated for every later test, even after a failure.
        call_command("migrate", interactive=False, verbosity=0)
