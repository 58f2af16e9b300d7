"""AgentStore settings: one module, driven by environment variables.

With no environment variables the project runs on embedded defaults (SQLite under
``var/``, in-memory channel layer, local-memory cache, agent runs on a worker thread
of the web process). ``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL,
channels-redis, a Redis cache and Celery workers (SPEC §2.1).
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("AGENTSTORE_VAR_DIR", BASE_DIR / "var"))


def env_str(name: str, default: str = "") -> str:
    """A string setting; ``NAME_FILE`` (a path) wins over ``NAME`` for secrets."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        return Path(file_path).read_text(encoding="utf-8").strip()
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


TESTING = "pytest" in sys.modules or env_bool("AGENTSTORE_TESTING")
DEBUG = env_bool("DEBUG", default=False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if DEBUG or TESTING:
        # Development only: a stable per-checkout key so sessions survive restarts.
        SECRET_KEY = "agentstore-insecure-development-key-do-not-use-in-production"  # noqa: S105
    else:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (set DEBUG=1 for development)."
        )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")
APP_VERSION = "0.1.0"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "guardian",
    "channels",
    "accounts",
    "integrations",
    "knowledge",
    "agents",
    "chats",
]

MIDDLEWARE = [
    "agentstore.observability.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "accounts.middleware.UserLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "agentstore.urls"
ASGI_APPLICATION = "agentstore.asgi.application"
WSGI_APPLICATION = "agentstore.wsgi.application"

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
                "django.template.context_processors.i18n",
                "accounts.context_processors.preferences",
            ],
        },
    },
]

# --- database -----------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
EMBEDDED_DATABASE = not DATABASE_URL
if DATABASE_URL:
    # Persistent connections (health-checked before reuse): a fresh PostgreSQL connection
    # costs 5-10 ms, which a run or request should not pay every minute.
    DATABASES = {
        "default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 600))
    }
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Shown in pg_stat_activity (e.g. "agentstore-web", "agentstore-worker").
    if env_str("DB_APPLICATION_NAME", ""):
        DATABASES["default"].setdefault("OPTIONS", {})["application_name"] = env_str(
            "DB_APPLICATION_NAME"
        )
    # DB_POOL_SIZE > 0: connections come from a psycopg pool of that size per process
    # instead (Django's pool; persistent connections are then off). Meant for Celery
    # workers: a run holds a connection only while it talks to the database
    # (chats.runtime.loop.release_run_connection), so WORKER_CONCURRENCY runs share
    # DB_POOL_SIZE connections — PostgreSQL's max_connections stops capping run slots.
    DB_POOL_SIZE = env_int("DB_POOL_SIZE", 0)
    if DB_POOL_SIZE > 0:
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": DB_POOL_SIZE,
            "timeout": env_int("DB_POOL_TIMEOUT", 30),
        }
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "agentstore.sqlite3",
            "OPTIONS": {
                # WAL lets the web threads read while a run writes; IMMEDIATE avoids
                # "database is locked" upgrades from read to write transactions.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- redis: cache, channel layer, broker ------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "agentstore"),
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            # "pubsub" (Redis pub/sub, 40-100x faster at relaying run events) or "core"
            # (sorted sets, popped one message per round trip); see docs/benchmarks.md.
            "BACKEND": {
                "core": "channels_redis.core.RedisChannelLayer",
                "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
            }[env_str("CHANNEL_LAYER", "pubsub")],
            "CONFIG": {
                # redis-py 8 times socket reads out after 5 s by default, the same as
                # channels-redis' BZPOPMIN wait: an idle receive() then raised TimeoutError.
                # Its pool refuses (not waits) past max_connections: sized for bursts of
                # sockets joining/leaving groups at once (bench/chat_ws.py).
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": 30,
                        "max_connections": env_int("CHANNEL_REDIS_MAX_CONNECTIONS", 1000),
                    }
                ],
                # All sockets of one process share ONE Redis queue, and the capacity is that
                # queue's: 1000 made a busy web process drop events silently.
                "capacity": env_int("CHANNEL_CAPACITY", 100_000),
                "expiry": 60,
                "prefix": env_str("CHANNEL_PREFIX", "asgi"),
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}
    }

# Agent runs and other background work: "celery" (production) or "embedded" (a worker
# thread of the web process; inline outside a server). Defaults follow REDIS_URL.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
TASK_DISPATCH = env_str("TASK_DISPATCH", "celery" if CELERY_BROKER_URL else "embedded")
# Embedded mode: threads for background tasks, and how long server shutdown waits for them.
EMBEDDED_TASK_THREADS = env_int("EMBEDDED_TASK_THREADS", 16)
EMBEDDED_SHUTDOWN_TIMEOUT = env_int("EMBEDDED_SHUTDOWN_TIMEOUT", 10)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Longer than the longest run, so an unacked run is not redelivered while running.
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600 * 2),
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = "UTC"

# --- auth ----------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "accounts.backends.RoleAwareBackend",
    "guardian.backends.ObjectPermissionBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
if TESTING:
    # Argon2 at full cost makes every test login ~50 ms; tests check behaviour, not cost.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"
JWT_ACCESS_TTL = timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 30))
JWT_REFRESH_TTL = timedelta(days=env_int("JWT_REFRESH_DAYS", 14))
LOGIN_THROTTLE_RATE = env_str("LOGIN_THROTTLE_RATE", "10/min")
INITIAL_ADMIN_EMAIL = env_str("INITIAL_ADMIN_EMAIL")
INITIAL_ADMIN_PASSWORD = env_str("INITIAL_ADMIN_PASSWORD")
GUARDIAN_RAISE_403 = False
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row

# --- secrets at rest -----------------------------------------------------------------------
# SECRET_KEYS: "key_id:base64key" entries separated by commas or whitespace (SECRET_KEYS_FILE
# works too); the first encrypts, all decrypt. Validated at start-up by integrations.secrets.
SECRET_KEYS = env_str("SECRET_KEYS").replace(",", " ").split()
SECRET_CIPHER = env_str("SECRET_CIPHER", "fernet")

# --- i18n ----------------------------------------------------------------------------------
LANGUAGE_CODE = env_str("LANGUAGE_CODE", "en")
LANGUAGES = [("en", _("English")), ("zh-hans", "简体中文"), ("zh-hant", "繁體中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- static --------------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = VAR_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or TESTING
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG or TESTING or EMBEDDED_DATABASE

# --- REST framework --------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "accounts.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["agentstore.api.envelope.EnvelopeJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "agentstore.api.pagination.PagePagination",
    "PAGE_SIZE": 20,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "agentstore.api.ordering.SortByFilter",
    ],
    "EXCEPTION_HANDLER": "agentstore.api.envelope.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"login": LOGIN_THROTTLE_RATE},
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "AgentStore API",
    "DESCRIPTION": (
        "Every /api/v1 response is wrapped in an envelope "
        '`{"code": 0, "message": "success", "data": ...}`; errors are '
        '`{"code": <5-digit>, "message": ..., "details": ...}` with a matching HTTP status.'
    ),
    "VERSION": APP_VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Several choice sets share the field names role and status: name each one.
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "accounts.models.Role",
        "RunStatusEnum": "chats.models.Run.Status",
        "ChatStatusEnum": "chats.models.Chat.Status",
        "ChatMessageRoleEnum": "chats.models.ChatMessage.Role",
        "ChatMessageStatusEnum": "chats.models.ChatMessage.Status",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        # Before the envelope: adds the AG-UI SSE endpoint, a plain Django view.
        "chats.api.schema.agui_postprocessing_hook",
        "agentstore.api.schema.envelope_postprocessing_hook",
    ],
}

# --- security ------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY") else None
)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", default=not DEBUG and not EMBEDDED_DATABASE)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
# Reverse proxies in front of the app that append to X-Forwarded-For (0 = trust none).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
# Outbound HTTP policy (provider calls, MCP, webhooks): hosts allowed despite being private.
OUTBOUND_ALLOWLIST = env_list("OUTBOUND_ALLOWLIST")
# CPython's GIL switch interval in seconds for Celery workers (Python's default is 0.005):
# a run hands work between its thread and the shared event loop several times on the way
# to its first token, and a woken thread may wait that long for the GIL. Not for the web
# process, whose event loop relays streams: there a shorter interval lets database threads
# preempt the relay (measured, docs/benchmarks.md).
WORKER_SWITCH_INTERVAL = float(env_str("WORKER_SWITCH_INTERVAL", "0.001"))
# The long-running processes freeze their start-up heap out of the cyclic garbage collector
# once they have imported everything (agentstore.heap): full collections otherwise walk it
# and stall the process for hundreds of milliseconds under load. GC_THRESHOLDS: the
# "gen0,gen1,gen2" thresholds of those processes (Python's own are 700,10,10): young
# collections ~14x less often, so a full one every minute or so instead of every few
# seconds under load, at no measured memory cost (docs/benchmarks.md).
GC_FREEZE = env_bool("GC_FREEZE", default=True)
GC_THRESHOLDS = [int(x) for x in env_list("GC_THRESHOLDS", ["10000", "10", "10"])]
# Runs: text deltas are flushed (stored + published) at most every RUN_EVENT_FLUSH_INTERVAL
# seconds per run, and a worker's loop keeps its runs' flushes under
# RUN_EVENT_FLUSHES_PER_SECOND by stretching that interval (chats.runtime.emitter).
RUN_EVENT_FLUSH_INTERVAL = float(env_str("RUN_EVENT_FLUSH_INTERVAL", "0.04"))
RUN_EVENT_FLUSHES_PER_SECOND = float(env_str("RUN_EVENT_FLUSHES_PER_SECOND", "250"))
# Runs: the model stream holds text back while the emitter would batch it anyway
# (integrations.llm.openai_stream); off = every chunk goes through as it arrives.
RUN_STREAM_HOLD = env_bool("RUN_STREAM_HOLD", default=True)
# The event loop a Celery worker's runs share (chats.runtime.loop): "uvloop" or "asyncio".
WORKER_EVENT_LOOP = env_str("WORKER_EVENT_LOOP", "uvloop")
# Seconds a process remembers a system setting it read (integrations.system_settings);
# another process's change is seen that much later at most. 0 = read the cache every time.
SYSTEM_SETTINGS_MEMO = float(env_str("SYSTEM_SETTINGS_MEMO", "1.0"))

# --- logging -------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOG_FORMAT = env_str("LOG_FORMAT", "json" if not DEBUG else "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "agentstore.observability.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "agentstore.observability.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": LOG_FORMAT if LOG_FORMAT in {"json", "text"} else "json",
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
    },
}

# --- product limits (defaults; admins override them in system settings) ---------------------
MAX_SESSIONS_PER_USER = env_int("MAX_SESSIONS_PER_USER", 200)
MAX_CONCURRENT_RUNS_PER_USER = env_int("MAX_CONCURRENT_RUNS_PER_USER", 5)
WS_MAX_MESSAGE_BYTES = env_int("WS_MAX_MESSAGE_BYTES", 64 * 1024)
CHAT_MESSAGES_PER_MINUTE = env_int("CHAT_MESSAGES_PER_MINUTE", 20)  # per user, all chats

# --- agent runs (chats.runtime; see chats/runtime/execute.py and recovery.py) ---------------
# Soft: enforced inside the run (it fails with "time_limit"); hard: Celery kills the task
# (prefork pool) and the sweeper fails runs that started longer ago.
RUN_SOFT_TIME_LIMIT = env_int("RUN_SOFT_TIME_LIMIT", 600)
RUN_HARD_TIME_LIMIT = env_int("RUN_HARD_TIME_LIMIT", 660)
RUN_MAX_RETRIES = env_int("RUN_MAX_RETRIES", 2)  # transient provider errors before a token
RUN_HEARTBEAT_INTERVAL = float(env_str("RUN_HEARTBEAT_INTERVAL", "5"))
RUN_STALE_AFTER = float(env_str("RUN_STALE_AFTER", "30"))  # heartbeat older: worker lost
RUN_SWEEP_INTERVAL = env_int("RUN_SWEEP_INTERVAL", 30)
RUN_PENDING_TIMEOUT = env_int("RUN_PENDING_TIMEOUT", 3600)
RUN_MAX_ITERS = env_int("RUN_MAX_ITERS", 10)  # reasoning-acting iterations per reply
# Persona check (chats/persona_check.py): the judge model's id; empty = the default model.
PERSONA_JUDGE_MODEL_ID = env_str("PERSONA_JUDGE_MODEL_ID", "")
# Review smoke run (agents/checks_review.py): seconds the demo-model run may take (then: warn).
REVIEW_SMOKE_RUN_TIMEOUT = float(env_str("REVIEW_SMOKE_RUN_TIMEOUT", "30"))
# Embedded mode: sweep from the web process (no Celery beat). Off under tests unless a test
# turns it on, so test servers do not run background work of their own.
RUN_EMBEDDED_SWEEPER = env_bool("RUN_EMBEDDED_SWEEPER", default=not TESTING)
CELERY_BEAT_SCHEDULE = {
    "runs-sweep": {"task": "agentstore.runs_sweep", "schedule": float(RUN_SWEEP_INTERVAL)},
}
