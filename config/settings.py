"""Flowdesk settings: 12-factor, everything that differs between machines comes from the environment."""

import os
import sys
from pathlib import Path

from config import database, storage
from config.mail import email_settings

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = env_bool("DJANGO_DEBUG", False)
# Commands that never sign anything (no session, token or cookie) run without a key: a throwaway one.
KEYLESS_COMMANDS = {
    "makemigrations",
    "showmigrations",
    "sqlmigrate",
    "collectstatic",
    "makemessages",
    "compilemessages",
}
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
COMMAND = sys.argv[1] if Path(sys.argv[0]).name == "manage.py" and len(sys.argv) > 1 else ""
if not SECRET_KEY and COMMAND in KEYLESS_COMMANDS:
    import secrets

    SECRET_KEY = secrets.token_urlsafe(50)
if not SECRET_KEY:
    if not DEBUG:
        # Safe by default: never sign sessions and tokens with a key everyone can read.
        sys.exit(
            "error: DJANGO_SECRET_KEY is not set and DJANGO_DEBUG is off: set a long random "
            "DJANGO_SECRET_KEY (python -c 'import secrets; print(secrets.token_urlsafe(50))')"
        )
    SECRET_KEY = "flowdesk-insecure-dev-key-debug-only"
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")
    if h.strip()
]

INSTALLED_APPS = [
    "config.apps.FlowdeskAdminConfig",  # django.contrib.admin with the operations home
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",  # runserver serves static files the WhiteNoise way too
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "axes",
    "django_q",
    "processes",
    "processes.api",
    "tasks_inbox",
    "integrations",
]

MIDDLEWARE = [
    "processes.context.RequestIdMiddleware",  # first: every response carries X-Request-ID
    "django.middleware.security.SecurityMiddleware",
    # Static files from STATIC_ROOT (collectstatic), compressed and cache-forever hashed, in every
    # server alike: gunicorn in production, the demo and the browser tests.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "processes.api.middleware.ApiErrorMiddleware",
    "processes.middleware.RefuseNulMiddleware",  # after: an API caller gets the API's error shape
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Accept-Language picks the language; the person's own choice (after authentication) wins.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "tasks_inbox.middleware.PersonLocaleMiddleware",  # the profile's language and time zone
    "processes.middleware.StyledErrorMiddleware",  # a page for a bare 4xx (needs the user)
    "processes.middleware.RefuseBadAdminSelectionMiddleware",  # ids an admin action gets
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its plain refusal.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"

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

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

# --- Database: config/database.py (DATABASE_URL, FLOWDESK_DB_*) ----------------------------------
DATABASES = database.DATABASES
FLOWDESK_DB_POOLER = database.FLOWDESK_DB_POOLER
FLOWDESK_DB_PREPARE = database.FLOWDESK_DB_PREPARE

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login before checking it
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row; anonymous callers see nothing

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Login throttling: django-axes (the login page and POST /api/auth/token/ alike) -------------
# FLOWDESK_LOGIN_FAILURES wrong passwords for one username from one address lock that pair out
# for FLOWDESK_LOGIN_COOLOFF_MINUTES; a success resets the count. Per pair, so nobody can lock
# a colleague out from elsewhere and one office's shared address is not locked as a whole.
AXES_ENABLED = env_bool("FLOWDESK_LOGIN_THROTTLE", True)
AXES_FAILURE_LIMIT = int(os.environ.get("FLOWDESK_LOGIN_FAILURES", "5"))
AXES_COOLOFF_TIME = float(os.environ.get("FLOWDESK_LOGIN_COOLOFF_MINUTES", "15")) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "config.security.lockout_response"
AXES_CLIENT_IP_CALLABLE = "config.security.client_ip"
AXES_VERBOSE = False

# The pages and notices speak English, French or German: the person's profile says which, else
# the browser's Accept-Language, else FLOWDESK_LANGUAGE (en, fr or de), which is also the language
# of the on-call SMS alerts. Catalogues: locale/<code>/LC_MESSAGES (docs/guides/administrators.md).
LANGUAGE_CODE = os.environ.get("FLOWDESK_LANGUAGE", "en")
LANGUAGES = [("en", "English"), ("fr", "Français"), ("de", "Deutsch")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# The site's time zone (an IANA name such as "Europe/Paris"): every page shows times in it, with
# its abbreviation, in the one format of config/formats (e.g. "28 Nov 2026, 19:23 CET").
TIME_ZONE = os.environ.get("FLOWDESK_TIME_ZONE", "UTC")
FORMAT_MODULE_PATH = ["config.formats"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# `make install` runs collectstatic into it; FLOWDESK_STATIC_ROOT moves it (read-only images).
STATIC_ROOT = Path(os.environ.get("FLOWDESK_STATIC_ROOT", BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]

# Retention (manage.py archive_processes): where archives of closed processes go, through
# django-storages. A directory by default (FLOWDESK_ARCHIVE_DIR); an S3-compatible bucket when
# FLOWDESK_ARCHIVE_S3_BUCKET is set (pip install ".[s3]"; credentials from the usual AWS_*
# variables or the instance role; FLOWDESK_ARCHIVE_S3_ENDPOINT for MinIO and friends).
FLOWDESK_ARCHIVE_DIR = os.environ.get("FLOWDESK_ARCHIVE_DIR", str(BASE_DIR / "var" / "archive"))
FLOWDESK_ARCHIVE_S3_BUCKET = os.environ.get("FLOWDESK_ARCHIVE_S3_BUCKET", "")
# Files attached to cases (the inbox's form, POST /api/processes/{id}/attachments/), stored under
# their SHA-256, never overwritten: a directory by default (FLOWDESK_ATTACHMENTS_DIR), an
# S3-compatible bucket when FLOWDESK_ATTACHMENTS_S3_BUCKET is set (as the archive: same endpoint
# variable FLOWDESK_ARCHIVE_S3_ENDPOINT, credentials from AWS_*). Downloads are signed links valid
# FLOWDESK_ATTACHMENT_LINK_SECONDS.
FLOWDESK_ATTACHMENTS_DIR = os.environ.get(
    "FLOWDESK_ATTACHMENTS_DIR", str(BASE_DIR / "var" / "attachments")
)
FLOWDESK_ATTACHMENTS_S3_BUCKET = os.environ.get("FLOWDESK_ATTACHMENTS_S3_BUCKET", "")
FLOWDESK_ATTACHMENT_LINK_SECONDS = int(os.environ.get("FLOWDESK_ATTACHMENT_LINK_SECONDS", "300"))
STORAGES = storage.storages(  # config/storage.py: a directory, or a bucket when one is named
    archive_dir=FLOWDESK_ARCHIVE_DIR,
    archive_bucket=FLOWDESK_ARCHIVE_S3_BUCKET,
    attachments_dir=FLOWDESK_ATTACHMENTS_DIR,
    attachments_bucket=FLOWDESK_ATTACHMENTS_S3_BUCKET,
)

# --- HTTPS: on by default when DEBUG is off (`manage.py check --deploy` is clean) ---------------
# FLOWDESK_HTTPS=0 turns the whole set off, for a plain-HTTP demo on 127.0.0.1; each setting can
# also be set on its own. Behind a TLS-terminating proxy set FLOWDESK_PROXY_SSL_HEADER (usually
# "HTTP_X_FORWARDED_PROTO") so Django knows the request came in over HTTPS.
HTTPS = env_bool("FLOWDESK_HTTPS", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("FLOWDESK_SECURE_COOKIES", HTTPS)
CSRF_COOKIE_SECURE = env_bool("FLOWDESK_SECURE_COOKIES", HTTPS)
SECURE_SSL_REDIRECT = env_bool("FLOWDESK_SSL_REDIRECT", HTTPS)
SECURE_HSTS_SECONDS = int(os.environ.get("FLOWDESK_HSTS_SECONDS", "31536000" if HTTPS else "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("FLOWDESK_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("FLOWDESK_HSTS_PRELOAD", HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
if os.environ.get("FLOWDESK_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = (os.environ["FLOWDESK_PROXY_SSL_HEADER"], "https")
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]
SESSION_COOKIE_HTTPONLY = True

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/inbox/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Public base URL used in links sent out of the system (SMS, StartTask payloads).
FLOWDESK_BASE_URL = os.environ.get("FLOWDESK_BASE_URL", "http://127.0.0.1:8000")

# --- Background work: django-q2 ---------------------------------------------------------------
# ORM broker by default (embedded, at-least-once); Redis when FLOWDESK_REDIS_URL is set (scale-out).
# The engine never trusts the queue alone: its own sweep re-enqueues lost or expired steps.
FLOWDESK_REDIS_URL = os.environ.get("FLOWDESK_REDIS_URL", "")
Q_CLUSTER = {
    "name": os.environ.get("FLOWDESK_Q_NAME", "flowdesk"),
    "workers": int(os.environ.get("FLOWDESK_Q_WORKERS", "2")),
    # A step's own timeout (from the spec) is enforced per task; these are the outer bounds.
    # Keep timeout well under retry: the ORM broker redelivers a task running longer than retry.
    "timeout": int(os.environ.get("FLOWDESK_Q_TIMEOUT", "300")),
    "retry": int(os.environ.get("FLOWDESK_Q_RETRY", "360")),
    "max_attempts": 0,
    "save_limit": int(os.environ.get("FLOWDESK_Q_SAVE_LIMIT", "1000")),
    "ack_failures": True,
    "catch_up": False,
    "poll": float(os.environ.get("FLOWDESK_Q_POLL", "0.2")),
    # Tasks the pusher takes from the broker per round trip.
    "bulk": int(os.environ.get("FLOWDESK_Q_BULK", "1")),
    # A worker process is replaced after this many tasks (django-q2's default, 500).
    "recycle": int(os.environ.get("FLOWDESK_Q_RECYCLE", "500")),
    "label": "Background work",
    # django-q2 logs through its own handler: the same level as everything else.
    "log_level": os.environ.get("FLOWDESK_LOG_LEVEL", "INFO").upper(),
}
if FLOWDESK_REDIS_URL:
    Q_CLUSTER["redis"] = FLOWDESK_REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# The definition the admin's dashboard opens on (the first key by name when empty or not seen).
FLOWDESK_DASHBOARD_KEY = os.environ.get("FLOWDESK_DASHBOARD_KEY", "")

# Minutes between the fallback timer sweeps (one django-q2 schedule, for a bare qcluster); the
# timer loop of ``manage.py workers`` / ``manage.py timers`` runs timers to the second.
FLOWDESK_SWEEP_MINUTES = int(os.environ.get("FLOWDESK_SWEEP_MINUTES", "1"))
# The timer loop looks for new timers at least this often (seconds); it sleeps until the
# earliest one otherwise.
FLOWDESK_TIMER_TICK = float(os.environ.get("FLOWDESK_TIMER_TICK", "1"))
# ``manage.py workers`` runs the timer loop in a thread (turn off to run ``manage.py timers``).
FLOWDESK_TIMER_LOOP = os.environ.get("FLOWDESK_TIMER_LOOP", "1").lower() not in ("0", "false", "")
# One timer loop across hosts (PostgreSQL): the supervisor holding the timer lease runs it and
# renews it every third of this many seconds; when its host dies, another takes the loop over
# once the lease expired (processes/supervisor/leader.py).
FLOWDESK_TIMER_LEASE = float(os.environ.get("FLOWDESK_TIMER_LEASE", "5"))
# A scheduled step nobody picked up within this many seconds is enqueued again (Redis is at-most-once).
FLOWDESK_REENQUEUE_AFTER = float(os.environ.get("FLOWDESK_REENQUEUE_AFTER", "120"))
# Extra seconds a running step's lease lasts beyond its timeout before the sweep reclaims it.
FLOWDESK_LEASE_MARGIN = int(os.environ.get("FLOWDESK_LEASE_MARGIN", "5"))
# Default step timeout when the spec names none.
FLOWDESK_DEFAULT_STEP_TIMEOUT = int(os.environ.get("FLOWDESK_DEFAULT_STEP_TIMEOUT", "60"))
# Eager dispatch (docs/performance.md): a worker whose completion makes service steps ready
# leases one of them in the same transaction and runs it next. A queued step's django-q2 timeout
# grows by EAGER_SECONDS, the time a worker may go on with such steps after its first one.
# Seconds a web worker keeps a token's user (docs/reference/settings.md: revocation semantics).
FLOWDESK_TOKEN_CACHE_SECONDS = float(os.environ.get("FLOWDESK_TOKEN_CACHE_SECONDS", "5"))
FLOWDESK_EAGER_STEPS = os.environ.get("FLOWDESK_EAGER_STEPS", "1") == "1"
FLOWDESK_EAGER_SECONDS = int(os.environ.get("FLOWDESK_EAGER_SECONDS", "10"))
# Batch dispatch: the service steps one transaction makes ready in one process go to a worker as
# one queue message (at most this many), leased in one transaction, run side by side in threads,
# their outcomes recorded together (docs/performance.md). 1: a message per step.
FLOWDESK_STEP_BATCH = max(1, int(os.environ.get("FLOWDESK_STEP_BATCH", "16")))
# Group commit (Redis broker): a worker takes up to this many step messages waiting in the queue
# at once (at most STEP_BATCH steps) and leases, reports and commits them together. 1: one.
FLOWDESK_STEP_GROUP = max(1, int(os.environ.get("FLOWDESK_STEP_GROUP", "8")))

# Worker supervision (`manage.py workers`, processes/supervisor/): the supervisor runs qcluster
# in its own process group, sends a heartbeat task through the broker every HEARTBEAT seconds and
# restarts the whole tree when none came back for STALL seconds (a SIGKILLed process can leave a
# multiprocessing queue locked for good) or when qcluster exits. Each supervisor has its own
# heartbeat lane, which its cluster's pusher reads before the shared queue (the broker classes).
FLOWDESK_HEARTBEAT_SECONDS = float(os.environ.get("FLOWDESK_HEARTBEAT_SECONDS", "5"))
FLOWDESK_STALL_SECONDS = float(os.environ.get("FLOWDESK_STALL_SECONDS", "20"))
# SIGTERM: seconds qcluster gets to finish its running steps before its tree is SIGKILLed.
FLOWDESK_SHUTDOWN_GRACE = float(
    os.environ.get("FLOWDESK_SHUTDOWN_GRACE", str(FLOWDESK_DEFAULT_STEP_TIMEOUT))
)
# One id per supervisor (its heartbeat lane and row); give two supervisors of one cluster on one
# host different ids.
FLOWDESK_SUPERVISOR_ID = os.environ.get("FLOWDESK_SUPERVISOR_ID", "") or os.uname().nodename
# A supervisor silent for longer than its stall + heartbeat is "gone" (its host vanished: a clean
# stop deregisters at once); after this many seconds of silence /healthz forgets it (an
# autoscaled fleet's removed hosts), and the next supervisor to start deletes its row.
FLOWDESK_SUPERVISOR_EXPIRY = float(os.environ.get("FLOWDESK_SUPERVISOR_EXPIRY", "600"))
# /healthz: 503 when the oldest due timer (TaskInstance.wake_at) is older than this (seconds).
FLOWDESK_HEALTH_TIMER_LAG = float(os.environ.get("FLOWDESK_HEALTH_TIMER_LAG", "300"))
# manage.py watchdog: seconds unhealthy before the on-call SMS (the supervisor repairs short stalls).
FLOWDESK_WATCHDOG_GRACE = float(os.environ.get("FLOWDESK_WATCHDOG_GRACE", "60"))
# The most tasks one definition may have (all stages): keeps a start's INSERTs and the diagram small.
FLOWDESK_MAX_TASKS = int(os.environ.get("FLOWDESK_MAX_TASKS", "500"))
# Call activities (PROCESS tasks): a chain of children is at most MAX_CALL_DEPTH levels below
# the process that started it, and one task starts at most MAX_FOR_EACH children. Over either,
# the PROCESS task fails (an incident) and nothing more is started.
FLOWDESK_MAX_CALL_DEPTH = int(os.environ.get("FLOWDESK_MAX_CALL_DEPTH", "5"))
FLOWDESK_MAX_FOR_EACH = int(os.environ.get("FLOWDESK_MAX_FOR_EACH", "1000"))
Q_CLUSTER["broker_class"] = (
    "processes.supervisor.RedisBroker" if FLOWDESK_REDIS_URL else "processes.supervisor.OrmBroker"
)

# --- API ------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "processes.api.authentication.FlowdeskTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "processes.api.exceptions.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Flowdesk API",
    "DESCRIPTION": "Start long-running processes, report task results, read status and history.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ProcessStateEnum": "processes.models.ProcessState",
        "TaskStateEnum": "processes.models.TaskState",
        "TaskTypeEnum": "processes.models.TaskType",
    },
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
# POST /api/processes/batch/ alone takes a larger body (10,000 items; DRF reads the stream).
FLOWDESK_BATCH_MAX_BYTES = int(os.environ.get("FLOWDESK_BATCH_MAX_BYTES") or 16 * 1024 * 1024)

# --- Integrations ---------------------------------------------------------------------------------
FLOWDESK_SIMULATORS = env_bool("FLOWDESK_SIMULATORS", False)
FLOWDESK_ACCOUNTING_URL = os.environ.get(
    "FLOWDESK_ACCOUNTING_URL", f"{FLOWDESK_BASE_URL}/simulators/accounting"
)
FLOWDESK_BONUS_URL = os.environ.get("FLOWDESK_BONUS_URL", f"{FLOWDESK_BASE_URL}/simulators/bonus")
FLOWDESK_SMS_BACKEND = os.environ.get(
    "FLOWDESK_SMS_BACKEND", "integrations.sms.backends.console.SmsBackend"
)
# Credentials (sent as "Authorization: Bearer ...") and HTTP timeouts of the two systems.
FLOWDESK_ACCOUNTING_TOKEN = os.environ.get("FLOWDESK_ACCOUNTING_TOKEN", "")
FLOWDESK_BONUS_TOKEN = os.environ.get("FLOWDESK_BONUS_TOKEN", "")
FLOWDESK_HTTP_CONNECT_TIMEOUT = float(os.environ.get("FLOWDESK_HTTP_CONNECT_TIMEOUT", "3"))
FLOWDESK_HTTP_READ_TIMEOUT = float(os.environ.get("FLOWDESK_HTTP_READ_TIMEOUT", "10"))
# Simulator faults at start-up, e.g. "bonus:down" or "accounting:latency=50,bonus:error_rate=0.2";
# the admin (Integrations > Simulator faults) or `manage.py simulator` overrides them at run time.
FLOWDESK_SIMULATOR_FAULTS = os.environ.get("FLOWDESK_SIMULATOR_FAULTS", "")
# SMS alerts: the file backend's path, and at most N SMS per recipient per window (seconds).
FLOWDESK_SMS_FILE_PATH = os.environ.get(
    "FLOWDESK_SMS_FILE_PATH", str(BASE_DIR / "var" / "sms.jsonl")
)
FLOWDESK_SMS_RATE_LIMIT = int(os.environ.get("FLOWDESK_SMS_RATE_LIMIT", "10"))
FLOWDESK_SMS_RATE_WINDOW = int(os.environ.get("FLOWDESK_SMS_RATE_WINDOW", "3600"))
FLOWDESK_SMS_DEFAULT_REGION = os.environ.get("FLOWDESK_SMS_DEFAULT_REGION", "FR")

# Events out (integrations.events_out): the Redis of Redis-stream subscriptions (the broker's by
# default), the approximate length a stream is trimmed to, and the first retry's back-off in
# seconds (doubled after each failed attempt, capped at an hour).
FLOWDESK_EVENTS_REDIS_URL = os.environ.get("FLOWDESK_EVENTS_REDIS_URL", FLOWDESK_REDIS_URL)
FLOWDESK_EVENTS_STREAM_MAXLEN = int(os.environ.get("FLOWDESK_EVENTS_STREAM_MAXLEN", "100000"))
FLOWDESK_EVENTS_BACKOFF = float(os.environ.get("FLOWDESK_EVENTS_BACKOFF", "10"))
# Seconds a process keeps its list of active subscriptions (saves a query per engine event).
FLOWDESK_EVENTS_SUBSCRIPTIONS_TTL = float(os.environ.get("FLOWDESK_EVENTS_SUBSCRIPTIONS_TTL", "5"))
# One delivery's whole time (lookup, connect, TLS, send, the answer's status): at most 10 s, so a
# slow receiver never holds a worker long; a claim older than this + FLOWDESK_LEASE_MARGIN is a
# worker that died in the middle, and another one takes the delivery over.
try:
    FLOWDESK_EVENTS_TIMEOUT = float(os.environ.get("FLOWDESK_EVENTS_TIMEOUT", "5"))
except ValueError:
    FLOWDESK_EVENTS_TIMEOUT = -1.0
if not 0 < FLOWDESK_EVENTS_TIMEOUT <= 10:
    sys.exit("error: FLOWDESK_EVENTS_TIMEOUT: seconds, more than 0 and at most 10")
# Webhook hosts opened despite a loopback, private, link-local or reserved address (comma-separated
# host names or addresses as written in the URLs): tests' receivers, an intranet. Default: none.
FLOWDESK_WEBHOOK_ALLOW_HOSTS = os.environ.get("FLOWDESK_WEBHOOK_ALLOW_HOSTS", "")
TWILIO_ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN", "")
TWILIO_FROM_NUMBER = os.environ.get("TWILIO_FROM_NUMBER", "")
TWILIO_MESSAGING_SERVICE_SID = os.environ.get("TWILIO_MESSAGING_SERVICE_SID", "")


# --- Mail and people-facing notices -----------------------------------------------------------------
# FLOWDESK_EMAIL_URL, else the usual EMAIL_* variables (config/mail.py); DEFAULT_FROM_EMAIL: the
# sender.
FLOWDESK_EMAIL_URL = os.environ.get("FLOWDESK_EMAIL_URL", "")
_MAIL = email_settings(FLOWDESK_EMAIL_URL)
EMAIL_BACKEND = _MAIL["EMAIL_BACKEND"]
EMAIL_HOST = _MAIL["EMAIL_HOST"]
EMAIL_PORT = _MAIL["EMAIL_PORT"]
EMAIL_HOST_USER = _MAIL["EMAIL_HOST_USER"]
EMAIL_HOST_PASSWORD = _MAIL["EMAIL_HOST_PASSWORD"]
EMAIL_USE_TLS = _MAIL["EMAIL_USE_TLS"]
EMAIL_USE_SSL = _MAIL["EMAIL_USE_SSL"]
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "flowdesk@localhost")
EMAIL_CONFIGURED = bool(FLOWDESK_EMAIL_URL or os.environ.get("EMAIL_HOST"))
# Where inbox notices go (dotted paths of tasks_inbox.notifications backends): the log, and mail
# when it is configured.
FLOWDESK_INBOX_NOTIFIERS = [
    p.strip()
    for p in os.environ.get(
        "FLOWDESK_INBOX_NOTIFIERS",
        "tasks_inbox.notifications.LogBackend"
        + (",tasks_inbox.notifications.EmailBackend" if EMAIL_CONFIGURED else ""),
    ).split(",")
    if p.strip()
]
# "A new task for you": one notice per human task when it is scheduled (to its assignee, else
# its role). On by default once mail is configured (a log line alone tells nobody).
FLOWDESK_NEW_TASK_NOTICES = env_bool("FLOWDESK_NEW_TASK_NOTICES", EMAIL_CONFIGURED)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {
        "handlers": ["console"],
        "level": os.environ.get("FLOWDESK_LOG_LEVEL", "INFO").upper(),
    },
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
