"""The migrated PostgreSQL database matches the project's inventory of the seed's schema.

`tests/fixtures/seed_schema.json` lists the seed's 30 tables (columns, types, nullability,
defaults, keys, ON DELETE rules) and its 26 named indexes. These tests read the catalog of
the test database (built by pytest-django from the migrations) and compare; the last ones
exercise the database's own behaviour with plain SQL, as a client that bypasses Django would.
"""

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction

FIXTURE_PATH = Path(__file__).parent / "fixtures" / "seed_schema.json"
SEED: dict[str, Any] = json.loads(FIXTURE_PATH.read_text(encoding="utf-8"))
TABLES: dict[str, dict[str, Any]] = {table["name"]: table for table in SEED["tables"]}
TABLE_NAMES = list(TABLES)
ENUM_TABLES = [name for name, table in TABLES.items() if any(c["type"] == "enum" for c in table["columns"])]
INDEXES: list[dict[str, Any]] = SEED["indexes"]

EXPECTED_TABLES = 30
EXPECTED_COLUMNS = 269
EXPECTED_INDEXES = 26

# information_schema.columns.data_type of each type family of the fixture.
DATA_TYPE = {
    "uuid": "uuid",
    "varchar": "character varying",
    "enum": "character varying",
    "text": "text",
    "integer": "integer",
    "numeric": "numeric",
    "date": "date",
    "time": "time without time zone",
    "timestamptz": "timestamp with time zone",
    "boolean": "boolean",
    "jsonb": "jsonb",
}
# pg_constraint.confdeltype -> the rule's SQL name.
ON_DELETE = {"a": "NO ACTION", "c": "CASCADE", "n": "SET NULL", "r": "RESTRICT", "d": "SET DEFAULT"}
# Column defaults equivalent to the seed's uuid_generate_v4() / CURRENT_TIMESTAMP.
UUID_DEFAULTS = ("gen_random_uuid()", "uuid_generate_v4()")
NOW_DEFAULTS = ("now()", "current_timestamp", "statement_timestamp()", "transaction_timestamp()")

pytestmark = pytest.mark.django_db


def query(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return list(cursor.fetchall())


def existing_tables() -> set[str]:
    rows = query(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
    )
    return {name for (name,) in rows}


def db_columns(table: str) -> dict[str, dict[str, Any]]:
    rows = query(
        """
        SELECT column_name, data_type, is_nullable, character_maximum_length,
               numeric_precision, numeric_scale, column_default, is_identity
        FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = %s
        ORDER BY ordinal_position
        """,
        [table],
    )
    keys = ("data_type", "is_nullable", "max_length", "precision", "scale", "default", "identity")
    return {row[0]: dict(zip(keys, row[1:], strict=True)) for row in rows}


def columns_of(table: str) -> dict[str, dict[str, Any]]:
    """The table's columns, failing the test at once if the table is missing."""
    columns = db_columns(table)
    assert columns, f"table {table!r} does not exist in the migrated database"
    return columns


def index_rows(table: str) -> list[dict[str, Any]]:
    """Every index of `table`: name, key columns in order, and its kind."""
    rows = query(
        """
        SELECT i.relname, ix.indisprimary, ix.indisunique, ix.indnkeyatts,
               ix.indpred IS NOT NULL, ix.indexprs IS NOT NULL, am.amname,
               ARRAY(
                   SELECT a.attname
                   FROM unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum
                   WHERE k.ord <= ix.indnkeyatts
                   ORDER BY k.ord
               )
        FROM pg_index ix
        JOIN pg_class i ON i.oid = ix.indexrelid
        JOIN pg_class t ON t.oid = ix.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        JOIN pg_am am ON am.oid = i.relam
        WHERE n.nspname = current_schema() AND t.relname = %s
        """,
        [table],
    )
    keys = ("name", "primary", "unique", "nkeys", "partial", "expressions", "method", "columns")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def constraints(table: str, contype: str) -> list[dict[str, Any]]:
    """Constraints of one type ('f', 'c', 'u', 'p') on `table`, with their column names."""
    rows = query(
        """
        SELECT con.conname, pg_get_constraintdef(con.oid), con.confdeltype,
               ref.relname,
               ARRAY(
                   SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
                   ORDER BY k.ord
               ),
               ARRAY(
                   SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
                   ORDER BY k.ord
               )
        FROM pg_constraint con
        JOIN pg_class t ON t.oid = con.conrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        LEFT JOIN pg_class ref ON ref.oid = con.confrelid
        WHERE n.nspname = current_schema() AND t.relname = %s AND con.contype = %s
        """,
        [table, contype],
    )
    keys = ("name", "definition", "deltype", "ref_table", "columns", "ref_columns")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def enum_checks(table: str, column: str) -> list[dict[str, Any]]:
    return [c for c in constraints(table, "c") if c["columns"] == [column]]


# --- the fixture itself ---------------------------------------------------------------


def test_fixture_inventories_the_whole_seed_schema() -> None:
    n_columns = sum(len(table["columns"]) for table in SEED["tables"])
    assert len(TABLES) == len(SEED["tables"]) == EXPECTED_TABLES, "fixture: 30 distinct tables"
    assert n_columns == EXPECTED_COLUMNS, f"fixture: {n_columns} columns, the seed has 269"
    assert len({index["name"] for index in INDEXES}) == EXPECTED_INDEXES, "fixture: 26 indexes"
    assert SEED["counts"] == {
        "tables": EXPECTED_TABLES,
        "columns": EXPECTED_COLUMNS,
        "indexes": EXPECTED_INDEXES,
    }


# --- structure, per table ----------------------------------------------------------------


def test_every_seed_table_exists() -> None:
    missing = sorted(set(TABLE_NAMES) - existing_tables())
    assert not missing, f"seed tables missing from the migrated database: {missing}"


@pytest.mark.parametrize("table", TABLE_NAMES)
def test_table_has_exactly_the_seed_columns(table: str) -> None:
    actual = list(columns_of(table))
    expected = [column["name"] for column in TABLES[table]["columns"]]
    missing = [name for name in expected if name not in actual]
    extra = [name for name in actual if name not in expected]
    assert not missing, f"{table}: columns missing: {missing}"
    assert not extra, f"{table}: columns not in the seed: {extra}"


@pytest.mark.parametrize("table", TABLE_NAMES)
def test_column_types_match_the_seed(table: str) -> None:
    actual = columns_of(table)
    problems = []
    for column in TABLES[table]["columns"]:
        name, family = column["name"], column["type"]
        db = actual.get(name)
        if db is None:
            continue  # reported by test_table_has_exactly_the_seed_columns
        where = f"{table}.{name}"
        if db["data_type"] != DATA_TYPE[family]:
            expected = DATA_TYPE[family]
            problems.append(f"{where}: type {db['data_type']!r}, seed {family} -> {expected!r}")
            continue
        if family in ("varchar", "enum") and db["max_length"] != column["max_length"]:
            problems.append(
                f"{where}: varchar({db['max_length']}), seed wants varchar({column['max_length']})"
                + (" (longest enum value)" if family == "enum" else "")
            )
        if family == "numeric" and (db["precision"], db["scale"]) != (
            column["precision"],
            column["scale"],
        ):
            problems.append(
                f"{where}: numeric({db['precision']},{db['scale']}), "
                f"seed DECIMAL({column['precision']},{column['scale']})"
            )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("table", TABLE_NAMES)
def test_column_nullability_matches_the_seed(table: str) -> None:
    actual = columns_of(table)
    problems = []
    for column in TABLES[table]["columns"]:
        db = actual.get(column["name"])
        if db is None or (db["is_nullable"] == "YES") == column["nullable"]:
            continue
        seed = "allows NULL" if column["nullable"] else "says NOT NULL / PRIMARY KEY"
        state = "nullable" if db["is_nullable"] == "YES" else "NOT NULL"
        problems.append(f"{table}.{column['name']}: {state} in the database, the seed {seed}")
    assert not problems, "\n".join(problems)


def default_problem(table: str, column: dict[str, Any], db: dict[str, Any]) -> str | None:
    """Why the database default of `column` differs from the seed's, or None."""
    where, default = f"{table}.{column['name']}", db["default"]
    if column.get("serial"):
        generated = db["identity"] == "YES" or (default or "").startswith("nextval(")
        return None if generated else f"{where}: SERIAL, but no identity or sequence default"
    seed_default = column.get("default")
    if seed_default is None:
        return None
    if default is None:
        return f"{where}: no database default, seed has {seed_default}"
    kind = seed_default["kind"]
    if kind == "uuid":
        ok = any(fn in default.lower() for fn in UUID_DEFAULTS)
        return None if ok else f"{where}: default {default!r}, expected gen_random_uuid()"
    if kind == "now":
        ok = default.lower() in NOW_DEFAULTS
        return None if ok else f"{where}: default {default!r}, expected now()/CURRENT_TIMESTAMP"
    # A literal: let PostgreSQL evaluate the stored expression ('draft'::character varying).
    (value,) = query(f"SELECT {default}")[0]
    if value != seed_default["value"] or type(value) is not type(seed_default["value"]):
        return f"{where}: default {default!r} = {value!r}, seed {seed_default['value']!r}"
    return None


@pytest.mark.parametrize("table", TABLE_NAMES)
def test_database_defaults_match_the_seed(table: str) -> None:
    actual = columns_of(table)
    problems = [
        problem
        for column in TABLES[table]["columns"]
        if column["name"] in actual and (problem := default_problem(table, column, actual[column["name"]])) is not None
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("table", TABLE_NAMES)
def test_primary_key_matches_the_seed(table: str) -> None:
    columns_of(table)
    primary = [row["columns"] for row in index_rows(table) if row["primary"]]
    assert primary == [TABLES[table]["primary_key"]], (
        f"{table}: primary key {primary}, seed PRIMARY KEY {TABLES[table]['primary_key']}"
    )


@pytest.mark.parametrize("table", TABLE_NAMES)
def test_unique_constraints_match_the_seed(table: str) -> None:
    columns_of(table)
    unique = [
        row["columns"]
        for row in index_rows(table)
        if row["unique"] and not row["primary"] and not row["partial"] and not row["expressions"]
    ]
    missing = [cols for cols in TABLES[table]["unique"] if cols not in unique]
    assert not missing, f"{table}: UNIQUE {missing} missing; unique indexes present: {unique}"


@pytest.mark.parametrize("table", TABLE_NAMES)
def test_foreign_keys_and_on_delete_rules_match_the_seed(table: str) -> None:
    columns_of(table)
    actual = {tuple(fk["columns"]): fk for fk in constraints(table, "f")}
    problems = []
    for fk in TABLES[table]["foreign_keys"]:
        where = f"{table}.{fk['column']}"
        db = actual.pop((fk["column"],), None)
        if db is None:
            problems.append(f"{where}: no FOREIGN KEY (seed: REFERENCES {fk['references_table']})")
            continue
        target = (db["ref_table"], db["ref_columns"])
        if target != (fk["references_table"], [fk["references_column"]]):
            problems.append(
                f"{where}: references {db['ref_table']}({', '.join(db['ref_columns'])}), seed "
                f"{fk['references_table']}({fk['references_column']})"
            )
        rule = ON_DELETE[db["deltype"]]
        if rule != fk["on_delete"]:
            problems.append(f"{where}: ON DELETE {rule} ({db['name']}), seed ON DELETE {fk['on_delete']}")
    extra = [f"{table}({', '.join(cols)}) -> {fk['ref_table']}" for cols, fk in actual.items()]
    if extra:
        problems.append(f"{table}: foreign keys not in the seed: {extra}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("table", ENUM_TABLES)
def test_enum_columns_have_a_check_listing_exactly_their_values(table: str) -> None:
    columns_of(table)
    problems = []
    for column in TABLES[table]["columns"]:
        if column["type"] != "enum":
            continue
        where, values = f"{table}.{column['name']}", set(column["values"])
        checks = enum_checks(table, column["name"])
        listed = [set(re.findall(r"'((?:[^']|'')*)'", check["definition"])) for check in checks]
        if values not in listed:
            found = [check["definition"] for check in checks] or "no CHECK on this column"
            problems.append(f"{where}: expected a CHECK of exactly {sorted(values)}; found {found}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("table", ENUM_TABLES)
def test_enum_checks_accept_every_listed_value_and_reject_others(table: str) -> None:
    """Each enum CHECK, copied onto a one-column temp table, admits exactly its values."""
    columns = columns_of(table)
    for column in TABLES[table]["columns"]:
        if column["type"] != "enum" or column["name"] not in columns:
            continue
        name, where = column["name"], f"{table}.{column['name']}"
        checks = enum_checks(table, name)
        assert checks, f"{where}: no CHECK constraint on the enum column"
        with connection.cursor() as cursor:
            length = column["max_length"]
            cursor.execute(f'CREATE TEMP TABLE enum_probe ("{name}" varchar({length}))')
            for number, check in enumerate(checks):
                definition = check["definition"]
                cursor.execute(f"ALTER TABLE enum_probe ADD CONSTRAINT probe_{number} {definition}")
            for value in column["values"]:
                cursor.execute("INSERT INTO enum_probe VALUES (%s)", [value])
            for bad in ("?", column["values"][0].upper()):
                with pytest.raises(IntegrityError), transaction.atomic():
                    cursor.execute("INSERT INTO enum_probe VALUES (%s)", [bad])
                    pytest.fail(f"{where}: the CHECK accepted {bad!r}, not in {column['values']}")
            cursor.execute("DROP TABLE enum_probe")


@pytest.mark.parametrize("index", INDEXES, ids=[index["name"] for index in INDEXES])
def test_named_index_exists_on_its_table_with_its_columns(index: dict[str, Any]) -> None:
    rows = query(
        "SELECT t.relname FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid "
        "JOIN pg_class t ON t.oid = ix.indrelid JOIN pg_namespace n ON n.oid = i.relnamespace "
        "WHERE n.nspname = current_schema() AND i.relname = %s",
        [index["name"]],
    )
    assert rows, f"index {index['name']!r} does not exist"
    assert rows[0][0] == index["table"], (
        f"index {index['name']!r} is on table {rows[0][0]!r}, seed puts it on {index['table']!r}"
    )
    (row,) = [r for r in index_rows(index["table"]) if r["name"] == index["name"]]
    assert row["columns"] == index["columns"], (
        f"index {index['name']!r} covers {row['columns']}, seed {index['columns']}"
    )
    assert row["nkeys"] == len(index["columns"]) and not row["expressions"], (
        f"index {index['name']!r} has expression or extra key columns"
    )
    assert not row["partial"], f"index {index['name']!r} is partial; the seed's is not"
    assert row["method"] == "btree", f"index {index['name']!r} uses {row['method']}, not btree"


# --- behaviour, with plain SQL ------------------------------------------------------------


def insert_owner(cursor: Any) -> tuple[Any, ...]:
    cursor.execute(
        "INSERT INTO users (email, password_hash, first_name, last_name, user_type) "
        "VALUES (%s, 'not-a-real-hash', 'Olive', 'Owner', 'landlord') "
        "RETURNING user_id, created_at, updated_at, is_active, now()",
        [f"owner-{uuid.uuid4().hex}@example.com"],
    )
    return cursor.fetchone()


def insert_property(cursor: Any, owner_id: Any) -> tuple[Any, ...]:
    cursor.execute(
        "INSERT INTO properties (owner_id, property_name, street_address, city, state, zip_code,"
        " property_type) VALUES (%s, 'Elm Court', '1 Elm St', 'Springfield', 'IL', '62701',"
        " 'apartment') RETURNING property_id, created_at, is_active, has_hud_approval",
        [owner_id],
    )
    return cursor.fetchone()


def insert_unit(cursor: Any, property_id: Any) -> tuple[Any, ...]:
    cursor.execute(
        "INSERT INTO units (property_id, unit_number, bedrooms, bathrooms, square_footage,"
        " monthly_rent) VALUES (%s, '1A', 2, 1.5, 850, 1200.00)"
        " RETURNING unit_id, created_at, is_occupied, is_available",
        [property_id],
    )
    return cursor.fetchone()


def count(cursor: Any, table: str, key: str, value: Any) -> int:
    cursor.execute(f"SELECT count(*) FROM {table} WHERE {key} = %s", [value])
    return int(cursor.fetchone()[0])


def test_plain_sql_inserts_get_the_database_defaults() -> None:
    with connection.cursor() as cursor:
        user_id, created_at, updated_at, is_active, now = insert_owner(cursor)
        property_id, property_created, property_active, hud = insert_property(cursor, user_id)
        unit_id, unit_created, occupied, available = insert_unit(cursor, property_id)

    for name, key in (("users", user_id), ("properties", property_id), ("units", unit_id)):
        assert isinstance(key, uuid.UUID) and key.version == 4, f"{name}: key {key!r} not a v4 UUID"
    for name, stamp in (
        ("users.created_at", created_at),
        ("users.updated_at", updated_at),
        ("properties.created_at", property_created),
        ("units.created_at", unit_created),
    ):
        assert stamp is not None, f"{name} was not set by the database"
        assert abs((stamp - now).total_seconds()) < 60, f"{name} = {stamp}, database now() = {now}"
    assert is_active is True, "users.is_active should default to TRUE"
    assert property_active is True and hud is False, (
        "properties: is_active should default to TRUE and has_hud_approval to FALSE"
    )
    assert occupied is False and available is True, "units: is_occupied FALSE, is_available TRUE"


def test_deleting_an_owner_with_sql_cascades_to_properties_and_units() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        user_id = insert_owner(cursor)[0]
        property_id = insert_property(cursor, user_id)[0]
        unit_id = insert_unit(cursor, property_id)[0]

        cursor.execute("DELETE FROM users WHERE user_id = %s", [user_id])

        assert count(cursor, "properties", "property_id", property_id) == 0, (
            "properties.owner_id ON DELETE CASCADE: the property outlived its owner"
        )
        assert count(cursor, "units", "unit_id", unit_id) == 0, (
            "units.property_id ON DELETE CASCADE: the unit outlived its property"
        )


def test_deleting_a_lease_with_sql_sets_its_transactions_lease_to_null() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        property_id = insert_property(cursor, insert_owner(cursor)[0])[0]
        unit_id = insert_unit(cursor, property_id)[0]
        cursor.execute(
            "INSERT INTO leases (unit_id, start_date, end_date, monthly_rent, security_deposit)"
            " VALUES (%s, '2026-01-01', '2026-12-31', 1200.00, 1200.00)"
            " RETURNING lease_id, lease_status",
            [unit_id],
        )
        lease_id, lease_status = cursor.fetchone()
        cursor.execute(
            "INSERT INTO transactions (lease_id, property_id, transaction_type, amount)"
            " VALUES (%s, %s, 'rent', 1200.00) RETURNING transaction_id, payment_status",
            [lease_id, property_id],
        )
        transaction_id, payment_status = cursor.fetchone()
        assert (lease_status, payment_status) == ("draft", "pending"), "enum defaults from the seed"

        cursor.execute("DELETE FROM leases WHERE lease_id = %s", [lease_id])

        cursor.execute("SELECT lease_id FROM transactions WHERE transaction_id = %s", [transaction_id])
        rows = cursor.fetchall()
    assert rows == [(None,)], f"transactions.lease_id ON DELETE SET NULL: expected the row kept with NULL, got {rows}"


def test_deleting_a_vendor_still_on_a_work_order_is_refused() -> None:
    """work_orders.vendor_id has no ON DELETE rule in the seed: NO ACTION blocks the delete."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "INSERT INTO vendors (company_name, phone, service_category)"
            " VALUES ('Fixit', '555-0100', 'plumbing') RETURNING vendor_id"
        )
        vendor_id = cursor.fetchone()[0]
        cursor.execute("INSERT INTO work_orders (vendor_id) VALUES (%s)", [vendor_id])
        with pytest.raises(IntegrityError), transaction.atomic():
            cursor.execute("DELETE FROM vendors WHERE vendor_id = %s", [vendor_id])
            pytest.fail("deleting a vendor referenced by a work order succeeded")


def test_a_user_type_outside_the_enum_is_rejected_by_the_database() -> None:
    with connection.cursor() as cursor, pytest.raises(IntegrityError, match="check constraint"), transaction.atomic():
        cursor.execute(
            "INSERT INTO users (email, password_hash, first_name, last_name, user_type)"
            " VALUES ('enum@example.com', 'x', 'Eve', 'Enum', 'superuser')"
        )
