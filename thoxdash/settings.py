"""ThoxDash settings: everything from the environment, through typed helpers in thoxdash.env."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from collectors import store as _store
from thoxdash.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_secret,
    env_str,
    env_url,
    placeholder_in,
)

BASE_DIR = Path(__file__).resolve().parent.parent
RUN_DIR = Path(env_str("THOXDASH_RUN_DIR", str(BASE_DIR / ".run")))

DEBUG = env_bool("THOXDASH_DEBUG", False)


def _secret_key() -> str:
    """THOXDASH_SECRET_KEY, else one generated once and kept in the run folder (0600)."""
    key = env_secret("THOXDASH_SECRET_KEY", min_chars=32)
    if key:
        return key
    path = RUN_DIR / "secret_key"
    try:
        return path.read_text().strip()
    except OSError:
        pass
    key = secrets.token_urlsafe(50)
    try:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
    except FileExistsError:
        return path.read_text().strip()
    except OSError:
        pass
    return key


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list(
    "THOXDASH_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env_list("THOXDASH_CSRF_TRUSTED_ORIGINS", [])
PORT = env_int("THOXDASH_PORT", 8090, minimum=1, maximum=65535)
EXTERNAL_URL = env_str("THOXDASH_EXTERNAL_URL", f"http://127.0.0.1:{PORT}")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "advisors",
    "thoxdash",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "thoxdash.headers.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "thoxdash.outage.StoreOutageMiddleware",  # 503 (not 500) while Redis is away
]

ROOT_URLCONF = "thoxdash.urls"
ASGI_APPLICATION = "thoxdash.asgi.application"
WSGI_APPLICATION = None

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

DATABASES = {
    "default": dj_database_url.parse(
        env_url(
            "DATABASE_URL",
            f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
            ("sqlite", "postgres", "postgresql"),
        ),
        conn_max_age=60,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": env_int("THOXDASH_PASSWORD_MIN_LENGTH", 10, minimum=8, maximum=128)}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = RUN_DIR / "static"


def _plotly_dir() -> str:
    """Plotly's JS bundle ships inside the plotly Python package: serve it from there (no CDN)."""
    import plotly

    return str(Path(plotly.__file__).parent / "package_data")


STATICFILES_DIRS = [BASE_DIR / "static", ("plotly", _plotly_dir())]

# -- Redis, channels, Celery ---------------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", "redis://127.0.0.1:6379/0", ("redis", "rediss", "unix"))
if placeholder_in(REDIS_URL):
    raise ImproperlyConfigured(f"REDIS_URL still holds the placeholder {placeholder_in(REDIS_URL)!r}")
REDIS_PREFIX = env_str("THOXDASH_REDIS_PREFIX", "thox:")

# No channel layer: the websocket consumers read the device streams themselves (no group messages).

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A task whose worker died without acking (SIGKILL, power loss) is redelivered once it is older than
# the visibility timeout, at the next scan for such tasks (every restore interval); keep the timeout
# above the longest task (tasks are idempotent, so an early redelivery is harmless).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "global_keyprefix": f"{REDIS_PREFIX}celery:",
    "visibility_timeout": env_float("THOXDASH_CELERY_VISIBILITY_TIMEOUT_S", 300.0, minimum=1.0),
    "unacked_restore_interval": env_float("THOXDASH_CELERY_RESTORE_INTERVAL_S", 10.0, minimum=0.5),
    "unacked_restore_throttle": 1,
}
CELERY_TASK_DEFAULT_QUEUE = f"{REDIS_PREFIX}default"
CELERY_BEAT_SCHEDULE_FILENAME = str(RUN_DIR / "celerybeat-schedule")
RULES_INTERVAL_S = env_float("THOXDASH_RULES_INTERVAL_S", 1.0, minimum=0.1)
ROLLUP_INTERVAL_S = env_float("THOXDASH_ROLLUP_INTERVAL_S", 60.0, minimum=1.0)
# Beat sends the devices to the workers in batches of this many (one evaluate_batch task each: the
# per-task and per-query overheads are paid once per batch); a batch not started within
# RULES_EXPIRES_S is dropped (the next cycle evaluates those devices again) so backlogs do not grow.
RULES_BATCH = env_int("THOXDASH_RULES_BATCH", 25, minimum=1, maximum=10_000)
RULES_EXPIRES_S = env_float("THOXDASH_RULES_EXPIRES_S", 5.0, minimum=0.1)
# Raw telemetry and request streams are trimmed by age at each rollup pass (the rollups cover longer
# ranges); the count caps in collectors/store.py stay as a safety bound. Events are kept by count.
RAW_RETENTION_S = env_float("THOXDASH_RAW_RETENTION_S", _store.RAW_RETENTION_S, minimum=900.0)
# Rollup retention per step, "step:seconds" pairs: 10 s buckets serve the 1 h range, 60 s the 24 h
# range, 600 s the 7 d range (each kept well beyond the range it serves).


def _retention_pairs(name: str, default: list[str]) -> dict[int, float]:
    out = {}
    for item in env_list(name, default):
        step, _, keep = item.partition(":")
        try:
            out[int(step)] = float(keep)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must be step:seconds pairs like 10:86400,60:172800, got {item!r}"
            ) from None
    return out


ROLLUP_RETENTION_S = _retention_pairs(
    "THOXDASH_ROLLUP_RETENTION_S", [f"{k}:{v:g}" for k, v in _store.ROLLUP_RETENTION_S.items()]
)

# -- Canary speed checks (advisors/tasks_canary.py): off unless a runtime's config enables it ---
CANARY_RUNTIMES = env_list("THOXDASH_CANARY_RUNTIMES", [])  # runtime names checked on every device
CANARY_TICK_S = env_float("THOXDASH_CANARY_TICK_S", 30.0, minimum=1.0)
CANARY_INTERVAL_S = env_float("THOXDASH_CANARY_INTERVAL_S", 900.0, minimum=10.0)
CANARY_TIMEOUT_S = env_float("THOXDASH_CANARY_TIMEOUT_S", 120.0, minimum=1.0)
CANARY_PROMPT = env_str("THOXDASH_CANARY_PROMPT", "Say hello.")
CANARY_MAX_TOKENS = env_int("THOXDASH_CANARY_MAX_TOKENS", 32, minimum=1, maximum=4096)
# Hosts (`*` globs) the worker may send speed checks to; empty: any host of a valid runtime URL.
CANARY_ALLOWED_HOSTS = env_list("THOXDASH_CANARY_ALLOWED_HOSTS", [])
CELERY_BEAT_SCHEDULE = {
    "canary speed checks": {
        "task": "advisors.tasks_canary.speed_checks_due",
        "schedule": CANARY_TICK_S,
        "options": {"expires": CANARY_TICK_S},
    },
}

# -- Agent, live view ------------------------------------------------------------------------
# The master action key: each device's requests are signed with HMAC(master, device id)
# (collectors/actions/signing.derive_key); devices hold only their own derived key.
# THOXDASH_AGENT_MASTER_KEY (or _FILE); THOXDASH_AGENT_KEY is read as the master when it is unset.
AGENT_KEY = env_secret("THOXDASH_AGENT_MASTER_KEY") or env_secret("THOXDASH_AGENT_KEY")
# Scrape credential for GET /metrics (Prometheus `authorization: credentials`); empty: off.
METRICS_TOKEN = env_secret("THOXDASH_METRICS_TOKEN", "")
STALE_AFTER_S = env_float("THOXDASH_STALE_AFTER_S", 15.0, minimum=1.0)
LIVE_MAX_UPDATES_PER_S = env_float("THOXDASH_LIVE_MAX_UPDATES_PER_S", 2.0, minimum=0.1)
# series per websocket message: a larger snapshot goes in parts (the websocket frame limit is 1 MiB)
LIVE_PART_BYTES = env_int("THOXDASH_LIVE_PART_BYTES", 256 * 1024, minimum=1024)
LIVE_WINDOW_S = env_int("THOXDASH_LIVE_WINDOW_S", 300, minimum=10)
# Bounds on what one user may ask of the server: the raw series API reads at most this far back and
# this many records; each user holds at most this many live websockets per web process.
SERIES_MAX_WINDOW_S = env_float("THOXDASH_SERIES_MAX_WINDOW_S", 3600.0, minimum=60.0)
SERIES_MAX_RECORDS = env_int("THOXDASH_SERIES_MAX_RECORDS", 20_000, minimum=100)
WS_PER_USER = env_int("THOXDASH_WS_PER_USER", 16, minimum=1, maximum=10_000)

# -- Webhook delivery (rule thresholds are data: advisors/config.py + per-device settings) ----
WEBHOOK_TIMEOUT_S = env_float("THOXDASH_WEBHOOK_TIMEOUT_S", 5.0, minimum=0.1)
# A notification is retried until delivered or this old (then `failed`, "expired"), however many
# attempts that takes; attempts back off from BASE to CAP.
WEBHOOK_MAX_AGE_S = env_float("THOXDASH_WEBHOOK_MAX_AGE_S", 86_400.0, minimum=1.0)
WEBHOOK_BACKOFF_BASE_S = env_float("THOXDASH_WEBHOOK_BACKOFF_BASE_S", 1.0, minimum=0.01)
WEBHOOK_BACKOFF_CAP_S = env_float("THOXDASH_WEBHOOK_BACKOFF_CAP_S", 60.0, minimum=0.01)
# alertmanager-api webhooks: re-send firing alerts this often (Prometheus' resend delay; endsAt = 4x).
ALERTMANAGER_RESEND_S = env_float("THOXDASH_ALERTMANAGER_RESEND_S", 60.0, minimum=1.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("THOXDASH_LOG_LEVEL", "INFO")},
    "loggers": {"daphne": {"level": "WARNING"}, "django.channels.server": {"level": "WARNING"}},
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy (thoxdash/headers.py): no inline scripts or handlers, no eval; Plotly sets
# styles at run time, so styles keep 'unsafe-inline'.
CONTENT_SECURITY_POLICY = env_str("THOXDASH_CSP", "") or (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
# Behind TLS (THOXDASH_EXTERNAL_URL is https): cookies only over HTTPS, HSTS, and the proxy's
# X-Forwarded-Proto trusted (nginx sets it; deploy/nginx/thoxdash.conf).
HTTPS = EXTERNAL_URL.lower().startswith("https://")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("THOXDASH_SECURE_COOKIES", HTTPS)
SECURE_HSTS_SECONDS = env_int("THOXDASH_HSTS_SECONDS", 31_536_000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = False
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"
