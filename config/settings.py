"""Settings for every environment, read from the process environment with django-environ.

One module with explicit switches: ``SLUICE_ENV=production`` flips every default to its
safe value. Every variable a user may change is listed in README.md with its default.
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

SLUICE_ENV = env.str("SLUICE_ENV", default="development")
PRODUCTION = SLUICE_ENV == "production"
TESTING = env.bool("SLUICE_TESTING", default=False)

VAR_DIR = Path(env.str("SLUICE_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _embedded_secret_key() -> str:
    """Generate the secret key once into var/ so sessions survive restarts in embedded mode."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


if PRODUCTION:
    SECRET_KEY = env.str("SECRET_KEY")  # required: raises ImproperlyConfigured when missing
else:
    SECRET_KEY = env.str("SECRET_KEY", default="") or _embedded_secret_key()

DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[] if PRODUCTION else ["*"])
REQUIRE_HTTPS = env.bool("REQUIRE_HTTPS", default=PRODUCTION)
# Proxies whose X-Forwarded-Proto / X-Forwarded-For are believed: comma-separated CIDRs of
# the peers gunicorn sees (a load balancer, nginx on 127.0.0.1). From any other peer the
# headers are dropped before anything reads them (apps.core.middleware.TrustedProxyMiddleware),
# so a client reaching gunicorn directly cannot claim HTTPS or an allowlisted address. A
# malformed entry stops the process here rather than trusting nobody (or everybody) quietly.
TRUSTED_PROXIES = [
    str(ipaddress.ip_network(cidr.strip(), strict=False))
    for cidr in env.list("TRUSTED_PROXIES", default=[])
    if cidr.strip()
]
# Deprecated alias (before TRUSTED_PROXIES it trusted X-Forwarded-For from any peer): with
# TRUSTED_PROXIES empty it now trusts peers on the loopback and private networks only, where
# a reverse proxy sits (apps.core.middleware.DEPRECATED_ALIAS_NETWORKS).
TRUST_X_FORWARDED_FOR = env.bool("TRUST_X_FORWARDED_FOR", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# REQUIRE_HTTPS covers everything but the probes: the API answers plain HTTP with 403
# https_required (never a redirect, SPEC §4); every other page (the admin, the dashboard, the
# API docs, /metrics) is redirected to https:// by SecurityMiddleware. /healthz and /readyz
# stay on plain HTTP for the load balancer's and the orchestrator's probes.
SECURE_SSL_REDIRECT = REQUIRE_HTTPS
SECURE_REDIRECT_EXEMPT = [r"^api/v1/", r"^compat/", r"^healthz$", r"^readyz$"]
# HSTS, sent on HTTPS responses only; 0 turns it off. Subdomains of Sluice's own host are
# covered; preloading is a decision about the whole registered domain, left to the operator.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI and ReDoc assets served from the project (/api/docs/, /api/redoc/ offline).
    "drf_spectacular_sidecar",
    "apps.core",
    "apps.accounts",
    "apps.providers",
    "apps.enrichment",
    "apps.webhooks",
    "apps.imports",
    "apps.ops",
    "apps.compat",
]

MIDDLEWARE = [
    # First: forwarded headers from an untrusted peer are gone before anything reads them.
    "apps.core.middleware.TrustedProxyMiddleware",
    "apps.core.middleware.RequestIdMiddleware",
    "apps.core.middleware.DependencyOutageMiddleware",
    "apps.core.middleware.RequireHttpsMiddleware",
    # Outside the idempotency middleware so that replays carry this request's limits too.
    "apps.accounts.ratelimit.RateLimitHeadersMiddleware",
    "apps.core.idempotency.IdempotencyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Paths are exact (SPEC §4): never answer a POST with a redirect to a slashed URL.
APPEND_SLASH = False

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'sluice.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + IMMEDIATE transactions let the web process and the workers share one file
    # without "database is locked" errors under normal load.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    # Persistent connections: a new PostgreSQL connection per request costs more than the
    # whole enrich request does. The health check finds a connection that a restart of the
    # server cut, and the next use reconnects (no process needs restarting).
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=600)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # A server that is down refuses at once; one that is unreachable must not hold a request
    # (or a worker) past this many seconds per connection attempt: the API answers 503
    # service_unavailable instead (docs/errors.md). A connect_timeout in the URL wins.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=3)
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The single-enrich INSERT becomes a server-side prepared statement on a PostgreSQL
# connection after this many runs there (apps/core/db.py); no other query is ever prepared.
# Empty turns it off, for a pooler that cannot keep prepared statements (PgBouncer in
# transaction mode before 1.22, or without max_prepared_statements).
_prepare_threshold = env.str("DATABASE_PREPARE_THRESHOLD", default="5")
DATABASE_PREPARE_THRESHOLD = int(_prepare_threshold) if _prepare_threshold else None

# --- Redis, cache, broker -------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# Seconds the Django cache (circuit breakers, /readyz) waits to connect to Redis or for an
# answer: past it the call fails, and its callers fail open or answer 503 (docs/errors.md).
CACHE_REDIS_TIMEOUT = env.float("CACHE_REDIS_TIMEOUT", default=1.0)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "sluice",
            "OPTIONS": {
                "socket_connect_timeout": CACHE_REDIS_TIMEOUT,
                "socket_timeout": CACHE_REDIS_TIMEOUT,
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "sluice_cache",
        }
    }

BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
# Longer than any countdown (webhook retries ride one for at most 60 s) and than a task
# normally runs; a message still unacknowledged after it is delivered again (a no-op for a
# task whose work is leased or done: docs/reliability.md).
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=300)
# Celery's Django fixup closes the task thread's database connection before and after every
# task, so each task opened a new one (a PostgreSQL backend started per webhooks batch). With
# this, one connection in the process is closed every N tasks instead (the fixup counts a
# task's start and end against 2 N); a broken one is replaced on its next query (db_retry).
# 0: close around every task, as Celery does by default.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=100)

# --- Auth, static, i18n -----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# WhiteNoise serves the admin's static files from gunicorn; in development it reads them
# straight from the apps, so no collectstatic step is needed to run.
WHITENOISE_USE_FINDERS = not PRODUCTION

# --- REST framework and OpenAPI -------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apps.accounts.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["apps.accounts.permissions.HasApiAccess"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "apps.core.errors.exception_handler",
    # Requests are counted when the key authenticates; this refuses the over-limit ones.
    "DEFAULT_THROTTLE_CLASSES": ["apps.accounts.ratelimit.AccountRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "DATETIME_FORMAT": "iso-8601",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Sluice API",
    "DESCRIPTION": (
        "Asynchronous contact enrichment: submit contacts, get an enrichment_id at once, "
        "poll or receive a signed webhook when the provider waterfall has finished."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "ContactStatusEnum": ["pending", "finished"],
        "BulkStatusEnum": ["pending", "completed"],
        "AcceptedStatusEnum": ["pending"],
        "ResultStatusEnum": ["VERIFIED", "NOT_FOUND", "NO_CREDITS", "FAILED"],
        "EventTypeEnum": "apps.webhooks.models.Event.TYPES",
        "ImportStatusEnum": ["processing", "completed", "failed"],
        "ImportStageEnum": ["validating", "enqueueing", "enriching", "done"],
        "ExportStatusEnum": ["processing", "completed", "failed", "expired"],
        "ExportSourceEnum": ["import", "bulk", "list", "filters"],
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.core.schema.add_guard_headers",
        "apps.core.schema.undouble_request_names",
        "apps.core.schema.add_webhook_headers",
        "apps.core.schema.simplify_nullable_any",
    ],
    # OpenAPI 3.1: its top-level ``webhooks`` describe every event Sluice sends
    # (config/webhooks_schema.py), and its schemas are JSON Schema 2020-12, so a receiver can
    # validate a delivery with any JSON Schema library.
    "OAS_VERSION": "3.1.0",
    "WEBHOOKS": [
        f"config.webhooks_schema.{name}"
        for name in (
            "contact_enriched",
            "contact_verified",
            "bulk_completed",
            "credits_low",
            "credits_exhausted",
            "endpoint_disabled",
            "contact_added_to_list",
            "import_completed",
        )
    ],
    # Swagger UI and ReDoc from drf-spectacular-sidecar's static files, not a CDN: the docs
    # work on a machine without internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Product settings -----------------------------------------------------------------------
# Credit prices per found kind (SPEC §2).
CREDIT_PRICES = {
    "email": env.int("CREDIT_PRICE_EMAIL", default=1),
    "phone": env.int("CREDIT_PRICE_PHONE", default=10),
    "personal_email": env.int("CREDIT_PRICE_PERSONAL_EMAIL", default=2),
}
# Leases and recovery (docs/reliability.md). A worker renews the leases of the contacts it
# runs every lease/5 s; when it dies they lapse, and the reaper (every REAP_INTERVAL) gives
# them to another worker. A pending contact with no lease whose message seems lost (never
# claimed for STUCK_AFTER since it was last published) is published again too.
ENRICHMENT_LEASE_SECONDS = env.float("ENRICHMENT_LEASE_SECONDS", default=15.0)
ENRICHMENT_REAP_INTERVAL_SECONDS = env.float("ENRICHMENT_REAP_INTERVAL_SECONDS", default=5.0)
ENRICHMENT_STUCK_AFTER_SECONDS = env.int("ENRICHMENT_STUCK_AFTER_SECONDS", default=120)
# Runs after which a contact whose runs keep dying is finished as FAILED instead of re-run.
ENRICHMENT_MAX_RUNS = env.int("ENRICHMENT_MAX_RUNS", default=5)
# How long a worker retries a database write it needs (claim, finish, delivery record)
# while PostgreSQL is unreachable, before leaving the work to the reaper or the sweep.
DATABASE_OUTAGE_RETRY_SECONDS = env.float("DATABASE_OUTAGE_RETRY_SECONDS", default=90.0)
ENRICHMENT_CHUNK_SIZE = env.int("ENRICHMENT_CHUNK_SIZE", default=100)
# Single-contact requests committed within this window share one message (0: one each).
ENRICHMENT_PUBLISH_LINGER_MS = env.int("ENRICHMENT_PUBLISH_LINGER_MS", default=10)
# Waterfall threads per worker process (= provider calls in flight), shared by its tasks.
ENRICHMENT_CONCURRENCY = env.int("ENRICHMENT_CONCURRENCY", default=16)
API_KEY_LAST_USED_RESOLUTION_SECONDS = 60
# How long the single-contact intake trusts a web process's lookup of a key (0 = never);
# its INSERT re-checks revocation, API access and credits (docs/architecture.md).
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=5.0)

# Guards (docs/guards.md): rate limiter Redis timeout; idempotency key lifetime and the age
# after which an in-flight key whose request died may be taken over by a retry.
RATE_LIMIT_REDIS_TIMEOUT = env.float("RATE_LIMIT_REDIS_TIMEOUT", default=1.0)
IDEMPOTENCY_KEY_TTL_SECONDS = env.int("IDEMPOTENCY_KEY_TTL_SECONDS", default=86400)
IDEMPOTENCY_LOCK_TIMEOUT_SECONDS = env.int("IDEMPOTENCY_LOCK_TIMEOUT_SECONDS", default=120)

# Webhook URL rules (SPEC §6). Development defaults are permissive; production is strict.
WEBHOOK_ALLOW_HTTP = env.bool("WEBHOOK_ALLOW_HTTP", default=not PRODUCTION)
WEBHOOK_ALLOW_PRIVATE_TARGETS = env.bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", default=not PRODUCTION)
# Floats allowed so that tests can shrink the schedule below a second.
WEBHOOK_RETRY_SCHEDULE = [
    float(x)
    for x in env.list(
        "WEBHOOK_RETRY_SCHEDULE",
        default=["0", "5", "300", "1800", "7200", "18000", "36000", "36000"],
    )
]
WEBHOOK_DISABLE_AFTER_FAILURES = env.int("WEBHOOK_DISABLE_AFTER_FAILURES", default=20)
WEBHOOK_DISABLE_AFTER_SECONDS = env.int("WEBHOOK_DISABLE_AFTER_SECONDS", default=432000)
WEBHOOK_CONNECT_TIMEOUT = env.float("WEBHOOK_CONNECT_TIMEOUT", default=5.0)
WEBHOOK_READ_TIMEOUT = env.float("WEBHOOK_READ_TIMEOUT", default=15.0)
# Intake resolves a request's distinct webhook hosts concurrently within this many seconds in all.
WEBHOOK_DNS_TIMEOUT_SECONDS = env.float("WEBHOOK_DNS_TIMEOUT_SECONDS", default=2.0)
# Events (and their deliveries) are kept this long; never less than 24 h (SPEC §6).
WEBHOOK_EVENT_RETENTION_SECONDS = max(
    86400, env.int("WEBHOOK_EVENT_RETENTION_SECONDS", default=7 * 86400)
)
WEBHOOK_SWEEP_INTERVAL_SECONDS = env.float("WEBHOOK_SWEEP_INTERVAL_SECONDS", default=5.0)
# The webhooks process renews the claim of each delivery in flight every lease/5 s; a claim
# that lapsed (its process died mid-attempt) is published again by the next sweep.
WEBHOOK_LEASE_SECONDS = env.float("WEBHOOK_LEASE_SECONDS", default=15.0)
# A due delivery whose message went out this long ago without an attempt is re-published.
WEBHOOK_REPUBLISH_AFTER_SECONDS = env.float("WEBHOOK_REPUBLISH_AFTER_SECONDS", default=300.0)
# POST /api/v1/enrich/sync: the default and largest ``timeout`` (seconds), and how many such
# requests one web process holds waiting at once (past that: 202 at once). Each wait holds a
# web thread (WEB_THREADS), so keep it below the threads per process.
ENRICH_SYNC_TIMEOUT_SECONDS = env.float("ENRICH_SYNC_TIMEOUT_SECONDS", default=30.0)
ENRICH_SYNC_MAX_TIMEOUT_SECONDS = env.float("ENRICH_SYNC_MAX_TIMEOUT_SECONDS", default=60.0)
ENRICH_SYNC_MAX_WAITS = env.int("ENRICH_SYNC_MAX_WAITS", default=2)

# Vendor dialects (docs/compat.md): Pronto's API under /compat/pronto/api/v2/, prospiq's
# under /compat/prospiq/api/v1/, over the same services; each can be switched off.
COMPAT_PRONTO_ENABLED = env.bool("COMPAT_PRONTO_ENABLED", default=True)
COMPAT_PROSPIQ_ENABLED = env.bool("COMPAT_PROSPIQ_ENABLED", default=True)

# The delivery engine (docs/webhooks.md). Requests in flight per webhooks process (its sender
# threads); at most this many of them to one endpoint or one request-level target host ...
WEBHOOK_CONCURRENCY = env.int("WEBHOOK_CONCURRENCY", default=32)
WEBHOOK_MAX_IN_FLIGHT_PER_TARGET = env.int("WEBHOOK_MAX_IN_FLIGHT_PER_TARGET", default=8)
# ... and at most this many to one account's targets together.
WEBHOOK_MAX_IN_FLIGHT_PER_ACCOUNT = env.int("WEBHOOK_MAX_IN_FLIGHT_PER_ACCOUNT", default=16)
# Delivery ids per message, and claimed deliveries one process holds waiting to be sent.
WEBHOOK_BATCH_SIZE = env.int("WEBHOOK_BATCH_SIZE", default=100)
WEBHOOK_SENDER_BACKLOG = env.int("WEBHOOK_SENDER_BACKLOG", default=5000)
# Endpoints per account (and mode); an event's serialised body at most this many bytes.
WEBHOOK_MAX_ENDPOINTS_PER_ACCOUNT = env.int("WEBHOOK_MAX_ENDPOINTS_PER_ACCOUNT", default=50)
WEBHOOK_MAX_EVENT_BYTES = env.int("WEBHOOK_MAX_EVENT_BYTES", default=256 * 1024)
# credits.low fires when a charge takes the balance from at or above this to below it.
CREDITS_LOW_THRESHOLD = env.int("CREDITS_LOW_THRESHOLD", default=100)

PROVIDER_SIMULATOR_URL = env.str("PROVIDER_SIMULATOR_URL", default="")
# When set, GET /metrics requires "Authorization: Bearer <METRICS_TOKEN>". In production
# /metrics answers 404 until it is set (queue depths and outcome counts are not public); the
# rest of the process starts and serves as usual.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_REQUIRE_TOKEN = PRODUCTION

# --- Logging ----------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "apps.core.logging.ContextFilter"}},
    "formatters": {"json": {"()": "apps.core.logging.JsonFormatter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["context"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "celery": {"level": LOG_LEVEL},
    },
}

# --- Imports and exports (docs/imports.md) ----------------------------------------------------
# A CSV import: at most this many data rows and bytes (bytes are checked before the upload is
# read, from Content-Length, and again on the stored file; rows before the 202 when the file
# has more lines than rows allowed, and again on the worker). The JSON form's base64 counts
# its decoded bytes.
IMPORT_MAX_ROWS = env.int("IMPORT_MAX_ROWS", default=100_000)
IMPORT_MAX_BYTES = env.int("IMPORT_MAX_BYTES", default=50 * 1024 * 1024)
# Rows turned into contacts per transaction (the resumable unit: next_row is committed with it).
IMPORT_CHUNK_SIZE = env.int("IMPORT_CHUNK_SIZE", default=1000)
# The lease an import's or export's worker holds and renews; the sweep (every SWEEP_INTERVAL)
# publishes again one whose lease lapsed or whose message seems lost (STUCK_AFTER), at most
# MAX_RUNS times before failing it.
IMPORT_LEASE_SECONDS = env.float("IMPORT_LEASE_SECONDS", default=30.0)
IMPORT_SWEEP_INTERVAL_SECONDS = env.float("IMPORT_SWEEP_INTERVAL_SECONDS", default=10.0)
IMPORT_STUCK_AFTER_SECONDS = env.int("IMPORT_STUCK_AFTER_SECONDS", default=120)
IMPORT_MAX_RUNS = env.int("IMPORT_MAX_RUNS", default=5)
# An export's file is deleted this long after it was written (the row stays, "expired").
EXPORT_RETENTION_SECONDS = env.int("EXPORT_RETENTION_SECONDS", default=7 * 86400)
# Files (uploads, exports) go through Django's default storage: a folder under SLUICE_VAR_DIR
# by default; any Django storage class otherwise, e.g. S3-compatible object storage with
# FILE_STORAGE_BACKEND=storages.backends.s3.S3Storage (pip install 'sluice[s3]') and
# FILE_STORAGE_OPTIONS='{"bucket_name": "...", "endpoint_url": "https://..."}'.
FILE_STORAGE_BACKEND = env.str(
    "FILE_STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage"
)
FILE_STORAGE_OPTIONS = env.json("FILE_STORAGE_OPTIONS", default={})
if FILE_STORAGE_BACKEND == "django.core.files.storage.FileSystemStorage":
    FILE_STORAGE_OPTIONS = {"location": str(VAR_DIR / "files")} | FILE_STORAGE_OPTIONS
STORAGES = {
    "default": {"BACKEND": FILE_STORAGE_BACKEND, "OPTIONS": FILE_STORAGE_OPTIONS},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- Periodic tasks (beat) --------------------------------------------------------------------
# Each app's maintenance tasks are named "maintenance.<what>" and routed to that queue.
CELERY_BEAT_SCHEDULE = {
    "reap-stuck-contacts": {
        "task": "maintenance.reap_stuck_contacts",
        "schedule": ENRICHMENT_REAP_INTERVAL_SECONDS,
    },
    "purge-idempotency-keys": {"task": "maintenance.purge_idempotency_keys", "schedule": 3600.0},
    "sweep-webhook-deliveries": {
        "task": "maintenance.sweep_webhook_deliveries",
        "schedule": WEBHOOK_SWEEP_INTERVAL_SECONDS,
    },
    "purge-webhook-events": {"task": "maintenance.purge_webhook_events", "schedule": 3600.0},
    "sweep-imports": {
        "task": "maintenance.sweep_imports",
        "schedule": IMPORT_SWEEP_INTERVAL_SECONDS,
    },
    "purge-exports": {"task": "maintenance.purge_exports", "schedule": 600.0},
}

# --- Providers (SPEC §5) ----------------------------------------------------------------------
# name -> adapter class. Adding a vendor = one adapter module + one line here (docs/providers.md).
PROVIDERS = {
    "sandbox": "apps.providers.adapters.sandbox.SandboxProvider",
    "hunter": "apps.providers.adapters.hunter.HunterProvider",
    "pdl": "apps.providers.adapters.pdl.PeopleDataLabsProvider",
    "apollo": "apps.providers.adapters.apollo.ApolloProvider",
}
# Credentials and base URLs per vendor; PROVIDER_SIMULATOR_URL, when set, replaces every
# base URL (and stands in for a missing key) so the real adapters talk to the simulator.
PROVIDER_CREDENTIALS = {
    "hunter": {
        "api_key": env.str("HUNTER_API_KEY", default=""),
        "base_url": env.str("HUNTER_BASE_URL", default="https://api.hunter.io"),
    },
    "pdl": {
        "api_key": env.str("PDL_API_KEY", default=""),
        "base_url": env.str("PDL_BASE_URL", default="https://api.peopledatalabs.com"),
    },
    "apollo": {
        "api_key": env.str("APOLLO_API_KEY", default=""),
        "base_url": env.str("APOLLO_BASE_URL", default="https://api.apollo.io"),
    },
}
# Default waterfall order per kind (overridable per account and by ProviderConfig in admin).
PROVIDER_ORDER = {
    "email": env.list("PROVIDER_ORDER_EMAIL", default=["hunter", "apollo", "pdl"]),
    "phone": env.list("PROVIDER_ORDER_PHONE", default=["pdl", "hunter"]),
    "personal_email": env.list("PROVIDER_ORDER_PERSONAL_EMAIL", default=["pdl", "apollo"]),
}
PROVIDER_CONFIDENCE_THRESHOLD = env.int("PROVIDER_CONFIDENCE_THRESHOLD", default=80)
PROVIDER_CONNECT_TIMEOUT = env.float("PROVIDER_CONNECT_TIMEOUT", default=3.0)
PROVIDER_READ_TIMEOUT = env.float("PROVIDER_READ_TIMEOUT", default=10.0)
PROVIDER_HTTP_POOL_SIZE = env.int("PROVIDER_HTTP_POOL_SIZE", default=128)
# Retries of a retryable error (timeout, 5xx, 429) before moving to the next provider.
PROVIDER_MAX_RETRIES = env.int("PROVIDER_MAX_RETRIES", default=2)
PROVIDER_RETRY_BACKOFF_SECONDS = env.float("PROVIDER_RETRY_BACKOFF_SECONDS", default=0.25)
# A Retry-After longer than this is not waited for: the provider is skipped for that long.
PROVIDER_RETRY_AFTER_MAX_SECONDS = env.float("PROVIDER_RETRY_AFTER_MAX_SECONDS", default=5.0)
PROVIDER_BREAKER_FAILURES = env.int("PROVIDER_BREAKER_FAILURES", default=10)
PROVIDER_BREAKER_WINDOW_SECONDS = env.int("PROVIDER_BREAKER_WINDOW_SECONDS", default=60)
PROVIDER_BREAKER_COOLDOWN_SECONDS = env.int("PROVIDER_BREAKER_COOLDOWN_SECONDS", default=30)
# How long a worker trusts its last look at a breaker before asking Redis again.
PROVIDER_BREAKER_LOCAL_SECONDS = env.float("PROVIDER_BREAKER_LOCAL_SECONDS", default=1.0)
# A VERIFIED result for the same person in the same account is reused for this long.
PROVIDER_RESULT_REUSE_TTL_SECONDS = env.int("PROVIDER_RESULT_REUSE_TTL_SECONDS", default=2592000)
