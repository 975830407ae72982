"""Settings, read once from `PMS_*` environment variables (see `.env.example`)."""

import os
from decimal import Decimal, InvalidOperation
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

INSECURE_KEY_PREFIX = "insecure-dev-key"


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_decimal(name: str, default: str) -> Decimal:
    raw = os.environ.get(name) or default
    try:
        value = Decimal(raw)
    except InvalidOperation as exc:
        raise ImproperlyConfigured(f"{name} must be a decimal number, got {raw!r}") from exc
    if not value.is_finite() or value < 0:
        raise ImproperlyConfigured(f"{name} must be a number >= 0, got {raw!r}")
    return value


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DEBUG = env_bool("PMS_DEBUG", False)

SECRET_KEY = env_str("PMS_SECRET_KEY", f"{INSECURE_KEY_PREFIX}-only-for-local-development")
if not DEBUG and (SECRET_KEY.startswith(INSECURE_KEY_PREFIX) or len(SECRET_KEY) < 32):
    raise ImproperlyConfigured(
        "PMS_SECRET_KEY must be set to a random value of at least 32 characters when "
        "PMS_DEBUG is off (production mode). Set PMS_DEBUG=1 for local development."
    )

ALLOWED_HOSTS = env_list("PMS_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
# Browser origins allowed to open /ws/ and to post forms (scheme://host[:port]).
ALLOWED_ORIGINS = env_list("PMS_ALLOWED_ORIGINS", "http://localhost:8000,http://127.0.0.1:8000")
CSRF_TRUSTED_ORIGINS = ALLOWED_ORIGINS

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "channels",
    "procrastinate.contrib.django",
    "pms",
    "apps.accounts",
    "apps.properties",
    "apps.leasing",
    "apps.finance",
    "apps.maintenance",
    "apps.subscriptions",
    "apps.hud",
    "apps.events",
    "apps.messaging",
    "apps.documents",
    "apps.jobs",
    "apps.common",
    "apps.web",
]

MIDDLEWARE = [
    "pms.middleware.json_not_found_middleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apps.documents.middleware.usage_middleware",
]

ROOT_URLCONF = "pms.urls"
ASGI_APPLICATION = "pms.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env_str("PMS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pms")
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, engine="pms.postgres", conn_max_age=0, conn_health_checks=True)
}
DATABASES["default"].setdefault("TEST", {})["NAME"] = env_str("PMS_TEST_DATABASE_NAME", "test_pms")
# Store faults are bounded (issue #15): how long a connect to PostgreSQL may take (seconds), and
# how long one statement may run (ms; 0 = no limit) before PostgreSQL cancels it.
DATABASE_CONNECT_TIMEOUT_SECONDS = env_int("PMS_DATABASE_CONNECT_TIMEOUT_SECONDS", 5)
DATABASE_STATEMENT_TIMEOUT_MS = env_int("PMS_DATABASE_STATEMENT_TIMEOUT_MS", 30_000)
_db_options = DATABASES["default"].setdefault("OPTIONS", {})
_db_options.setdefault("connect_timeout", DATABASE_CONNECT_TIMEOUT_SECONDS)
if DATABASE_STATEMENT_TIMEOUT_MS > 0:
    _db_options["options"] = (
        f"{_db_options.get('options', '')} -c statement_timeout={DATABASE_STATEMENT_TIMEOUT_MS}".strip()
    )

REDIS_URL = env_str("PMS_REDIS_URL", "redis://127.0.0.1:6379/0")
MONGO_URL = env_str("PMS_MONGO_URL", "mongodb://127.0.0.1:27017/")
MONGO_DATABASE = env_str("PMS_MONGO_DATABASE", "pms")
# MongoDB faults are bounded: finding a server and connecting (ms), one reply on an open socket
# (ms; a frozen server answers `unavailable` after this instead of holding the command), and how
# often the driver re-checks a server it lost (ms; how soon `unavailable` stops after it is back).
MONGO_TIMEOUT_MS = env_int("PMS_MONGO_TIMEOUT_MS", 3000)
MONGO_SOCKET_TIMEOUT_MS = env_int("PMS_MONGO_SOCKET_TIMEOUT_MS", 5000)
MONGO_HEARTBEAT_MS = env_int("PMS_MONGO_HEARTBEAT_MS", 1000)
# The chat write path (issue #14): PyMongo's retryable writes, and the write concern's `w`
# ("1", "majority", or a number; journaled as the server defaults).
MONGO_RETRY_WRITES = env_bool("PMS_MONGO_RETRY_WRITES", True)
MONGO_WRITE_CONCERN = env_str("PMS_MONGO_WRITE_CONCERN", "1")
# The serving process's garbage collector: start-up objects frozen, young collections every 50,000
# allocations (pms/gcpolicy.py). 0 keeps CPython's defaults (scripts/test's own pytest process).
GC_TUNE = env_bool("PMS_GC_TUNE", True)
# How many chat `insert_many`s one process keeps in flight at once (realtime.batching). Replies
# and events keep the order of the sends either way. 1, the default: against the stand-in (one
# process, its inserts serialized under one lock and the GIL) 3 showed no gain in five
# alternated runs (docs/benchmarks.md, "Chat: inserts in flight"); a mongod, which runs
# commands in parallel, may take more.
MONGO_INSERTS_IN_FLIGHT = env_int("PMS_MONGO_INSERTS_IN_FLIGHT", 1)
if MONGO_INSERTS_IN_FLIGHT < 1:
    raise ImproperlyConfigured(f"PMS_MONGO_INSERTS_IN_FLIGHT must be 1 or more, got {MONGO_INSERTS_IN_FLIGHT}")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    }
}

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["apps.accounts.backends.EmailBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# Session tokens of the API and sockets (the seed's `sessions` table).
SESSION_TOKEN_TTL_SECONDS = env_int("PMS_SESSION_TTL_SECONDS", 24 * 3600)
# After `POST /auth/refresh`, how long the old token still works (requests already in flight).
SESSION_REFRESH_GRACE_SECONDS = env_int("PMS_SESSION_REFRESH_GRACE_SECONDS", 60)
PERMISSIONS_CACHE_TTL_SECONDS = env_int("PMS_PERMISSIONS_TTL_SECONDS", 3600)
LOGIN_RATE_LIMIT = env_int("PMS_LOGIN_RATE_LIMIT", 5)
LOGIN_RATE_WINDOW_SECONDS = env_int("PMS_LOGIN_RATE_WINDOW_SECONDS", 600)
API_RATE_LIMIT = env_int("PMS_API_RATE_LIMIT", 120)
API_RATE_WINDOW_SECONDS = env_int("PMS_API_RATE_WINDOW_SECONDS", 60)
# How long a lease invitation waits for the tenant's answer (default 7 days).
LEASE_INVITATION_TTL_SECONDS = env_int("PMS_LEASE_INVITATION_TTL_SECONDS", 7 * 24 * 3600)
# How many days before its end date a subscription's owner is told it ends (or renews); default 7.
SUBSCRIPTION_EXPIRY_NOTICE_DAYS = env_int("PMS_SUBSCRIPTION_EXPIRY_NOTICE_DAYS", 7)
# The lease lifecycle (apps/leasing/lifecycle.py, docs/leases.md): notices this many days before
# a lease's end date (default 60 and 30), and the rent change of an auto-renewal in percent
# (default 0: the same rent; "3.5" raises it 3.5%, "-2" lowers it 2%).
LEASE_NOTICE_DAYS = sorted({int(days) for days in env_list("PMS_LEASE_NOTICE_DAYS", "60,30")}, reverse=True)
try:
    LEASE_RENEWAL_RENT_CHANGE_PERCENT = Decimal(env_str("PMS_LEASE_RENEWAL_RENT_CHANGE_PERCENT", "0"))
except InvalidOperation:
    LEASE_RENEWAL_RENT_CHANGE_PERCENT = Decimal("NaN")
if not LEASE_RENEWAL_RENT_CHANGE_PERCENT.is_finite() or LEASE_RENEWAL_RENT_CHANGE_PERCENT < -100:
    raise ImproperlyConfigured("PMS_LEASE_RENEWAL_RENT_CHANGE_PERCENT must be a number of percent, at least -100")
if not LEASE_NOTICE_DAYS or min(LEASE_NOTICE_DAYS) < 1:
    raise ImproperlyConfigured("PMS_LEASE_NOTICE_DAYS must be whole days of at least 1, comma-separated")
# The job runner (apps/jobs, procrastinate): when the worker runs the daily jobs (cron, UTC;
# default hourly at :05, so a day's work runs shortly after midnight and a failed run is
# retried within the hour), and how many missed days a worker back from downtime catches up.
JOBS_CRON = env_str("PMS_JOBS_CRON", "5 * * * *")
JOBS_MAX_CATCH_UP_DAYS = env_int("PMS_JOBS_MAX_CATCH_UP_DAYS", 31)
# A worker starting up still defers a cron tick this recent (default: one hour, the default cron's
# period, so a freshly started worker runs the daily jobs at once instead of at the next tick).
JOBS_MAX_DELAY_SECONDS = env_int("PMS_JOBS_MAX_DELAY_SECONDS", 3600)
# procrastinate.contrib.django: tasks are found in every app's `tasks` module; a finished job's
# row is deleted (its outcome is logged and, for the daily jobs, kept in `daily_job_runs`).
PROCRASTINATE_PERIODIC_DEFAULTS = {"max_delay": JOBS_MAX_DELAY_SECONDS}
PROCRASTINATE_WORKER_DEFAULTS = {"delete_jobs": "successful"}
# Finance rules (apps/finance/jobs.py): a recurring charge is created this many days before
# its due date; tenants are reminded this many days before it is due; a pending or partial
# charge becomes late this many days after its due date; its late fee is flat + percent of the
# charge, capped at max (0: no cap).
CHARGE_LEAD_DAYS = env_int("PMS_CHARGE_LEAD_DAYS", 7)
DUE_REMINDER_DAYS = env_int("PMS_DUE_REMINDER_DAYS", 3)
LATE_GRACE_DAYS = env_int("PMS_LATE_GRACE_DAYS", 5)
LATE_FEE_FLAT = env_decimal("PMS_LATE_FEE_FLAT", "25.00")
LATE_FEE_PERCENT = env_decimal("PMS_LATE_FEE_PERCENT", "5")
LATE_FEE_MAX = env_decimal("PMS_LATE_FEE_MAX", "100.00")
# Realtime limits and timings (realtime/config.py has every name and the protocol's defaults).
REALTIME = {
    name: float(os.environ[variable])
    for name, variable in {
        "presence_ttl_seconds": "PMS_PRESENCE_TTL_SECONDS",
        "away_after_seconds": "PMS_AWAY_AFTER_SECONDS",
        "worker_ttl_seconds": "PMS_WORKER_TTL_SECONDS",
        "housekeeping_seconds": "PMS_HOUSEKEEPING_SECONDS",
        "auth_timeout_seconds": "PMS_WS_AUTH_TIMEOUT_SECONDS",
        "session_expiring_notice_seconds": "PMS_SESSION_EXPIRING_NOTICE_SECONDS",
        "commands_per_second": "PMS_WS_COMMANDS_PER_SECOND",
    }.items()
    if os.environ.get(variable)
}
REALTIME.update(
    {
        name: env_int(variable, 0)
        for name, variable in {
            "history_max_events": "PMS_HISTORY_MAX_EVENTS",
            "max_subscriptions": "PMS_WS_MAX_SUBSCRIPTIONS",
            "max_frame_bytes": "PMS_WS_MAX_FRAME_BYTES",
            "command_burst": "PMS_WS_COMMAND_BURST",
        }.items()
        if os.environ.get(variable)
    }
)
# On SIGTERM, /readyz answers 503 (draining) this many seconds before the server closes its sockets
# with 1012 and exits, so a load balancer stops sending it new connections first (pms/health.py).
# 0: close at once. The default covers deploy/haproxy.cfg's check (every 1 s, down after 2 failures).
DRAIN_SECONDS = float(env_decimal("PMS_DRAIN_SECONDS", "5"))
# Honour X-Forwarded-For only behind a trusted proxy that appends the address it saw (the last
# entry is the one taken). The server's own proxy-header handling follows the same switch:
# pms/server.py gives uvicorn `--forwarded-allow-ips` PMS_FORWARDED_ALLOW_IPS when on, none when off.
TRUST_X_FORWARDED_FOR = env_bool("PMS_TRUST_X_FORWARDED_FOR", False)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Uploaded documents (Django's default FileSystemStorage). MEDIA_URL is never served: files
# are downloaded through the permission-checked /api/v1/documents/{id}/download.
MEDIA_ROOT = Path(env_str("PMS_MEDIA_ROOT", str(BASE_DIR / "media")))
MEDIA_URL = "media/"
MAX_UPLOAD_BYTES = env_int("PMS_MAX_UPLOAD_BYTES", 10 * 1024 * 1024)
# A request body Django reads into memory (JSON, form fields; uploaded files do not count): past
# it the API answers 413 `too_large` (pms/api.py). Django's own default, 2.5 MiB.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("PMS_MAX_BODY_BYTES", 2_621_440)

STATIC_URL = "static/"
SERVE_STATIC = env_bool("PMS_SERVE_STATIC", True)
STATIC_ROOT = BASE_DIR / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("PMS_LOG_LEVEL", "INFO")},
    # procrastinate announces its task registration (and each periodic deferral) in every process;
    # the worker's lines (job started, ended) and the job runner's stay.
    "loggers": {
        "procrastinate.blueprints": {"level": "WARNING"},
        "procrastinate.periodic": {"level": "WARNING"},
    },
}
