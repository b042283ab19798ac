"""Settings shared by every environment, read from the environment with django-environ."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import environ
from csp.constants import NONE, SELF

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"
VAR_DIR.mkdir(exist_ok=True)

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
# `.env.example` copied to `.env` leaves these empty: empty means "use the default" here.
for _name in (
    "DATABASE_URL",
    "SECRET_KEY",
    "CSRF_TRUSTED_ORIGINS",
    "EMAIL_URL",
    "PROMETHEUS_MULTIPROC_DIR",
):
    if os.environ.get(_name) == "":
        del os.environ[_name]

# --- Core -------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=False)
_DEV_SECRET = "django-insecure-dev-only-tokenforge-secret-key-change-me"
SECRET_KEY = env("SECRET_KEY", default=_DEV_SECRET if DEBUG else None)
if not SECRET_KEY:
    raise environ.ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- Apps -------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files, no CDN
    "axes",
    "csp",
    "accounts",
    "projects",
    "ledger",
    "routing",
    "researcher",
]

MIDDLEWARE = [
    "config.middleware.RequestIdMiddleware",
    "config.middleware.NulByteMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "accounts.middleware.CurrentOrganizationMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "ledger:overview"
LOGOUT_REDIRECT_URL = "accounts:home"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

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
                "accounts.context_processors.organization",
                "config.context_processors.navigation",
            ],
        },
    },
]

# --- Data -------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'tokenforge.sqlite3'}"),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The gateway's ledger hot path on PostgreSQL: one statement per hold/capture/void, run on
# psycopg async connections owned by each worker's event loop (routing/db.py): two pools
# (settling, and reserving with synchronous_commit=off) of at most this many connections each
# per worker process. Off (LEDGER_FAST_PATH=false) falls back to the ORM path.
LEDGER_FAST_PATH = env.bool("LEDGER_FAST_PATH", default=True)
DB_ASYNC_POOL_SIZE = env.int("DB_ASYNC_POOL_SIZE", default=4)
# Non-streamed requests: the capture is durable before the answer leaves; with this on, only
# the bookkeeping that moves no money (the key's token-rate counter) runs after the response
# is sent, still inside the request (docs/billing.md). `make serve` turns it on.
ROUTING_SETTLE_AFTER_RESPONSE = env.bool("ROUTING_SETTLE_AFTER_RESPONSE", default=False)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web + worker) share one file in the embedded demo.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "tf",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "tokenforge",
        }
    }

# --- Celery -----------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {}
    if REDIS_URL
    else {
        "data_folder_in": str(VAR_DIR / "broker"),
        "data_folder_out": str(VAR_DIR / "broker"),
        "processed_folder": str(VAR_DIR / "broker-processed"),
        "control_folder": str(VAR_DIR / "broker-control"),  # kombu's default is ./control
        "store_processed": False,
    }
)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "expire-holds": {"task": "ledger.tasks.expire_holds", "schedule": 30.0},
    "purge-responses": {"task": "routing.tasks.responses_purge", "schedule": 3600.0},
    "researcher-recover": {"task": "researcher.tasks.runs_recover", "schedule": 60.0},
    "upstream-cost-drift": {"task": "ledger.tasks.upstream_cost_drift_check", "schedule": 3600.0},
    "wallets-watch": {"task": "ledger.tasks.wallets_watch", "schedule": 60.0},
}

# --- Money and gateway ------------------------------------------------------
FIELD_ENCRYPTION_KEY = env("FIELD_ENCRYPTION_KEY", default="")
# A hold's life without a keepalive. Every in-flight request keeps its hold alive on a timer,
# and each hold lives at least its route's timeout x tries + 60 s (routing.engine._hold_ttl),
# so a slow upstream (timeouts go up to 3,600 s) never outlives its hold (docs/billing.md).
HOLD_TTL_SECONDS = env.int("HOLD_TTL_SECONDS", default=900)
# Stored /v1/responses are deleted after this many days (routing.tasks.responses_purge).
RESPONSES_RETENTION_DAYS = env.int("RESPONSES_RETENTION_DAYS", default=30)
# A stream writes ahead what it has delivered this often, so a crashed worker's stream is
# charged for it by the expiry sweep instead of being forgiven.
ROUTING_STREAM_CHECKPOINT_SECONDS = env.float("ROUTING_STREAM_CHECKPOINT_SECONDS", default=5.0)
PROXY_MAX_BODY_BYTES = env.int("PROXY_MAX_BODY_BYTES", default=8 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = PROXY_MAX_BODY_BYTES
# Gateway tuning (routing app): cooldown after N failures in a window, retries, caches.
ROUTING_COOLDOWN_FAILURES = env.int("ROUTING_COOLDOWN_FAILURES", default=3)
ROUTING_COOLDOWN_WINDOW_SECONDS = env.int("ROUTING_COOLDOWN_WINDOW_SECONDS", default=60)
ROUTING_COOLDOWN_SECONDS = env.int("ROUTING_COOLDOWN_SECONDS", default=30)
# Half-open breaker: after a failed probe, the next probe waits this long (routing/cooldown.py).
ROUTING_COOLDOWN_PROBE_INTERVAL_SECONDS = env.int(
    "ROUTING_COOLDOWN_PROBE_INTERVAL_SECONDS", default=2
)
ROUTING_RETRIES = env.int("ROUTING_RETRIES", default=1)  # extra tries per route before fallback
ROUTING_RETRY_BACKOFF_SECONDS = env.float("ROUTING_RETRY_BACKOFF_SECONDS", default=0.2)
# One deadline across every attempt of a request, until its first byte (routing/deadline.py).
ROUTING_FIRST_BYTE_DEADLINE_SECONDS = env.float("ROUTING_FIRST_BYTE_DEADLINE_SECONDS", default=120)
# Reported usage is clamped to what the hold allowed plus this many tokens (routing/usage_guard.py).
ROUTING_USAGE_SLACK_TOKENS = env.int("ROUTING_USAGE_SLACK_TOKENS", default=1_000_000)
# JSON nested deeper than this is refused with 400 at parse time (routing/validation.py).
PROXY_MAX_JSON_DEPTH = env.int("PROXY_MAX_JSON_DEPTH", default=64)
# Proxies whose X-Forwarded-For / -Proto are trusted (comma-separated IPs or CIDRs, `*` for
# any); empty: none, the peer address is the client's (docs/scaling.md, scripts/serve.py).
FORWARDED_ALLOW_IPS = env("FORWARDED_ALLOW_IPS", default="")
# A connection must finish sending its request headers within this many seconds.
HEADER_READ_TIMEOUT_SECONDS = env.float("HEADER_READ_TIMEOUT_SECONDS", default=10)
ROUTING_DEFAULT_MAX_OUTPUT_TOKENS = env.int("ROUTING_DEFAULT_MAX_OUTPUT_TOKENS", default=4096)
ROUTING_KEY_CACHE_SECONDS = env.int("ROUTING_KEY_CACHE_SECONDS", default=30)
ROUTING_TABLE_CACHE_SECONDS = env.int("ROUTING_TABLE_CACHE_SECONDS", default=5)
# AI Researcher (docs/researcher.md): the default model of a run, an optional price-history
# source (a URL template with {ticker} answering date,open,high,low,close,volume CSV), the
# smallest output a step may be lowered to before the run stops at its budget, time limits.
RESEARCHER_DEFAULT_MODEL = env("RESEARCHER_DEFAULT_MODEL", default="demo-gpt")
RESEARCHER_PRICE_SOURCE_URL = env("RESEARCHER_PRICE_SOURCE_URL", default="")
RESEARCHER_MIN_STEP_TOKENS = env.int("RESEARCHER_MIN_STEP_TOKENS", default=64)
RESEARCHER_STEP_TIMEOUT_SECONDS = env.int("RESEARCHER_STEP_TIMEOUT_SECONDS", default=180)
RESEARCHER_RUN_TIMEOUT_SECONDS = env.int("RESEARCHER_RUN_TIMEOUT_SECONDS", default=1800)
# A worker renews its lease on a run while it works; after this long without renewal (the
# worker died) the beat sweep hands the run to another worker.
RESEARCHER_LEASE_SECONDS = env.int("RESEARCHER_LEASE_SECONDS", default=60)
# Every organization's free monthly researcher allowance per currency ("CREDIT:1.00,RMB:5"),
# funded from the promotions account and spent before its wallets; none by default.
RESEARCHER_MONTHLY_ALLOWANCE = dict(
    item.split(":", 1)
    for item in env.list("RESEARCHER_MONTHLY_ALLOWANCE", default=[])
    if ":" in item
)
# Prices (docs/billing.md): headers in which an upstream states its own cost of a request, the
# LiteLLM-format price catalog unset price parts follow (empty: the snapshot in routing/data),
# and the computed-vs-reported upstream cost difference (a fraction) that raises a drift alert.
ROUTING_REPORTED_COST_HEADERS = env.list(
    "ROUTING_REPORTED_COST_HEADERS", default=["x-litellm-response-cost"]
)
PRICE_CATALOG_PATH = env("PRICE_CATALOG_PATH", default="")
UPSTREAM_COST_DRIFT_THRESHOLD = env("UPSTREAM_COST_DRIFT_THRESHOLD", default="0.02")
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")
# /metrics (Prometheus): Bearer token; unset means the endpoint answers 404.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# prometheus-client multi-process mode (several uvicorn workers): one directory shared by the
# workers of one deployment. Must be in the environment before prometheus_client is imported.
PROMETHEUS_MULTIPROC_DIR = env("PROMETHEUS_MULTIPROC_DIR", default=str(VAR_DIR / "prometheus"))
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", PROMETHEUS_MULTIPROC_DIR)

# --- Affordability displays ---------------------------------------------------
# Optional USD->CNY rate: adds a labelled converted total beside per-currency figures and
# orders cost estimates across wallets. Display only; money never moves at this rate.
DISPLAY_FX_USD_CNY = Decimal(env("DISPLAY_FX_USD_CNY", default="") or "0") or None

# --- Email ------------------------------------------------------------------
# DEBUG on: printed to the console, links included (`make run`). DEBUG off: a real server
# from EMAIL_URL; unset, nothing is sent (a warning per message). A console backend with DEBUG
# off would print password-reset and invitation links into the logs: refused at start unless
# EMAIL_CONSOLE_ALLOWED=true, and then printed with every link removed (accounts/mail.py).
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "dummymail://")
vars().update(EMAIL_CONFIG)
if not DEBUG and "EMAIL_URL" not in os.environ:
    EMAIL_BACKEND = "accounts.mail.UnsentEmailBackend"
EMAIL_CONSOLE_ALLOWED = env.bool("EMAIL_CONSOLE_ALLOWED", default=False)
if not DEBUG and EMAIL_BACKEND == "django.core.mail.backends.console.EmailBackend":  # noqa: F821
    if not EMAIL_CONSOLE_ALLOWED:
        raise environ.ImproperlyConfigured(
            "EMAIL_URL is a console backend while DEBUG is off: password-reset and invitation "
            "links would be printed into the logs. Set EMAIL_URL to a mail server "
            "(smtp+tls://user:pass@host:587), or EMAIL_CONSOLE_ALLOWED=true to print e-mails "
            "with their links removed."
        )
    EMAIL_BACKEND = "accounts.mail.LinkRedactingConsoleBackend"
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="tokenforge <noreply@tokenforge.local>")
# Operators who get money alerts (a card refund or dispute beyond the wallet): comma-separated.
ADMINS = [("tokenforge operator", email) for email in env.list("OPERATOR_EMAILS", default=[])]

# --- Auth and security --------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_FORM_FIELD = "username"
# Django's AuthenticationForm posts the email as "username"; our form lowercases it before
# authenticate(), so "A@x.com" and "a@x.com" count against the same account.
AXES_LOCKOUT_TEMPLATE = "accounts/lockout.html"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"  # JSON under /api/
AXES_HTTP_RESPONSE_CODE = 429
# Called (dotted paths, in order, inside the creating transaction) for every new organization:
# accounts sits below ledger, so it cannot import the wallet opener itself.
ORGANIZATION_SETUP_HOOKS = ["ledger.services.postings.wallets_open"]
INVITATION_TTL_DAYS = env.int("INVITATION_TTL_DAYS", default=7)
# Management-API tokens (accounts.tokens): default lifetime, and how often last-used is written.
API_TOKEN_TTL_DAYS = env.int("API_TOKEN_TTL_DAYS", default=90)
API_TOKEN_LAST_USED_GRANULARITY_SECONDS = 60
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
# Content Security Policy (django-csp): everything from our own origin, no inline script, no
# CDN (Chart.js and Swagger UI are served from static files). Inline style *attributes* stay
# allowed (progress bars set their width in one) but not <style> elements.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "style-src-elem": [SELF],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- i18n, static -----------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"

# --- DRF --------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes an unauthenticated call a 401, not a 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "config.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "tokenforge management API",
    "DESCRIPTION": "Projects, keys, budgets, usage, ledger and wallets of your organization.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "PREPROCESSING_HOOKS": ["projects.api.schema_management_only"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "projects.api.schema_error_responses",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "CurrencyEnum": "ledger.money.Currency",
        "UsageKindEnum": "ledger.models.UsageKind",
        "TransactionKindEnum": "ledger.models.TransactionKind",
        "ResearchRunStatusEnum": "researcher.models.RunStatus",
        "ResearchDepthEnum": "researcher.models.Depth",
    },
}

# --- Logging ----------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "routing.observability.JsonFormatter"},
    },
    # Every line passes through the redaction filter: upstreams echo keys in their errors.
    "filters": {"redact": {"()": "accounts.redaction.RedactingFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]},
        # Formatted and written off the event loop (routing/observability.py).
        "json": {"()": "routing.observability.QueuedJsonHandler", "filters": ["redact"]},
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        # One JSON line per proxied request (routing/observability.py); never bodies or secrets.
        "tokenforge.requests": {
            "handlers": ["json"],
            "level": env("REQUEST_LOG_LEVEL", default="INFO"),
            "propagate": False,
        },
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
