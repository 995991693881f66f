"""Settings for the chat server, read once from the environment (and an optional `.env`)."""

import json
import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv(BASE_DIR / ".env")


def env_bool(name: str, default: bool = False) -> bool:
    """Return the boolean value of an environment variable ("1", "true", "yes", "on" are true)."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_float(name: str, default: float) -> float:
    """Return a number from the environment, failing early with the variable's name if it is not one."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}.") from exc


def env_json(name: str, default: object) -> object:
    """Return a JSON environment variable, parsed; fail early, naming the variable, if it is not JSON."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be JSON: {exc}.") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    """Return a comma-separated environment variable as a list of non-empty items."""
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG")
# On only under the test suite (pyproject.toml's pytest env sets CHAT_TEST_SUITE): the functions named
# `…_for_testing` assert it, so production code never calls them.
TEST_SUITE = env_bool("CHAT_TEST_SUITE")

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "Set DJANGO_SECRET_KEY (or DJANGO_DEBUG=1 for local development): "
            "the server refuses to start without a secret key when DEBUG is off."
        )
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    # First: its `runserver` is Daphne's (the ASGI app, WebSockets), draining on Ctrl-C.
    "conversations",
    "daphne",  # before staticfiles, whose runserver would serve WSGI only
    "conversations.apps.ChatAdminConfig",  # Django's admin, under the product's name
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "csp",
    "axes",
    # Single sign-on (OpenID Connect): allauth's social accounts; allauth.account only as far as they need
    # it (its own sign-up, password and e-mail pages are never routed: conversations/urls.py).
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
]

MIDDLEWARE = [
    "conversations.logs.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it turns a locked-out sign-in into its 429 response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "chatproject.urls"
ASGI_APPLICATION = "chatproject.asgi.application"

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
            # The page's own tags, kept with the HTTP views that serve the pages (conversations/web/).
            "libraries": {
                "module_scripts": "conversations.web.module_scripts",
                "page_rules": "conversations.web.page_rules",
            },
        },
    },
]

# Postgres only. Without DATABASE_URL: `make run`'s embedded server (scripts/embedded-postgres.py), reached
# through its socket in .data/postgres/ while it runs, so manage.py's commands find make run's data.
EMBEDDED_POSTGRES_URL = f"postgres://postgres@{quote(str(BASE_DIR / '.data' / 'postgres'), safe='')}/chat"
DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=EMBEDDED_POSTGRES_URL,
        # Under ASGI every request and worker thread holds its own connection, so persistent connections
        # pile up as idle backends (Django's docs: disable them under ASGI). Postgres uses a pool instead.
        conn_max_age=0,
        # The pool checks the connections it lends itself (conversations/pooled_postgres).
        conn_health_checks=False,
    )
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured(
        "DATABASE_URL must be a Postgres URL (postgres://...): no other database is supported."
    )
# This instance's Postgres connections: the pool keeps CHAT_DB_POOL_MIN open and never opens more than
# CHAT_DB_POOL_MAX; a call that finds them all busy waits up to CHAT_DB_POOL_TIMEOUT seconds, then fails.
# Instances × CHAT_DB_POOL_MAX must stay below Postgres's max_connections (docs/operations.md).
# CHAT_DB_POOL_MAX=0: no pool, each request or call opens a connection and closes it at its end.
CHAT_DB_POOL_MIN = int(env_float("CHAT_DB_POOL_MIN", 2))
CHAT_DB_POOL_MAX = int(env_float("CHAT_DB_POOL_MAX", 20))
CHAT_DB_POOL_TIMEOUT = env_float("CHAT_DB_POOL_TIMEOUT", 10.0)
if CHAT_DB_POOL_MAX < 0 or CHAT_DB_POOL_MIN < 0 or (CHAT_DB_POOL_MAX and CHAT_DB_POOL_MIN > CHAT_DB_POOL_MAX):
    raise ImproperlyConfigured("CHAT_DB_POOL_MAX must be 0 (no pool) or more, and CHAT_DB_POOL_MIN 0 to it.")
if CHAT_DB_POOL_MAX and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, with a pool that pings only connections that sat idle (see its docstring).
    DATABASES["default"]["ENGINE"] = "conversations.pooled_postgres"
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": CHAT_DB_POOL_MIN,
        "max_size": CHAT_DB_POOL_MAX,
        "timeout": CHAT_DB_POOL_TIMEOUT,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Background jobs (`manage.py chat_worker`, conversations/jobs/) ---
# Procrastinate keeps its jobs as rows in this Postgres database: enqueued in the transaction of the rows
# they concern, with no other service to run.
INSTALLED_APPS.append("procrastinate.contrib.django")
PROCRASTINATE_AUTODISCOVER_MODULE_NAME = ""  # the jobs are where the import paths say, nowhere else
PROCRASTINATE_IMPORT_PATHS = ["conversations.jobs.periodic", "conversations.jobs.stalled"]
if TEST_SUITE:
    PROCRASTINATE_IMPORT_PATHS.append("tests.job_tasks")  # the suite's own jobs (fail, wait, tell a page)
# The periodic jobs, as cron expressions (five fields, or six with seconds last); empty turns one off.
# Each runs once per period whatever the number of workers.
CHAT_RETENTION_SCHEDULE = os.environ.get("CHAT_RETENTION_SCHEDULE", "17 3 * * *").strip()
CHAT_ATTACHMENTS_CLEANUP_SCHEDULE = os.environ.get(
    "CHAT_ATTACHMENTS_CLEANUP_SCHEDULE", "*/10 * * * *"
).strip()
CHAT_MODELS_SYNC_SCHEDULE = os.environ.get("CHAT_MODELS_SYNC_SCHEDULE", "41 4 * * *").strip()
# Jobs one worker runs at once.
CHAT_WORKER_CONCURRENCY = int(env_float("CHAT_WORKER_CONCURRENCY", 4))
# At SIGTERM a worker takes no new job and waits this long for its running ones; those still running are
# then aborted and retried by another worker.
CHAT_WORKER_DRAIN_SECONDS = env_float("CHAT_WORKER_DRAIN_SECONDS", 30)
# A worker beats every third of this; a worker silent this long is dead (killed, its host gone), and its
# running jobs are run again by another worker.
CHAT_WORKER_STALLED_SECONDS = env_float("CHAT_WORKER_STALLED_SECONDS", 30)
if (
    CHAT_WORKER_CONCURRENCY < 1
    or CHAT_WORKER_DRAIN_SECONDS < 0
    or not 3 <= CHAT_WORKER_STALLED_SECONDS <= 3600
):
    raise ImproperlyConfigured(
        "CHAT_WORKER_CONCURRENCY must be 1 or more, CHAT_WORKER_DRAIN_SECONDS 0 or more, "
        "and CHAT_WORKER_STALLED_SECONDS 3 to 3600."
    )

REDIS_URL = os.environ.get("REDIS_URL", "").strip()
# Seconds a Redis command may wait for its reply (a half-open connection fails instead of hanging). It
# must outlast the reply log's blocking read of 2 s; subscriptions wait without it (see redisclient.py).
CHAT_REDIS_TIMEOUT = env_float("CHAT_REDIS_TIMEOUT", 10.0)
if CHAT_REDIS_TIMEOUT <= 2:
    raise ImproperlyConfigured("CHAT_REDIS_TIMEOUT must be more than 2 (the reply log blocks 2 s per read).")
# Every Redis key and the instances' pub/sub channel start with this, so deployments sharing one Redis
# server never hear each other (pub/sub ignores the database number in REDIS_URL).
CHAT_REDIS_PREFIX = os.environ.get("CHAT_REDIS_PREFIX", "").strip() or "chat"
# How instances hear each other's events with Redis: "redis", one pub/sub channel read by the relay's own
# loop, or "channels-redis", channels_redis' pub/sub layer (docs/operations.md, "Events between
# instances"). Every instance of a deployment must use the same one.
CHAT_EVENT_BUS = os.environ.get("CHAT_EVENT_BUS", "").strip() or "redis"
if CHAT_EVENT_BUS not in ("redis", "channels-redis"):
    raise ImproperlyConfigured('CHAT_EVENT_BUS must be "redis" or "channels-redis".')
# No channel layer: sockets subscribe nothing (ChatConsumer sets channel_layer=None) and the instances'
# events go through the relay's event bus (conversations/relay/backends/), which makes its own layer when
# CHAT_EVENT_BUS is "channels-redis". docs/operations.md, "Events between instances", gives the measurements.
CHANNEL_LAYERS: dict[str, dict] = {}

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
# Set for `collectstatic` in production; without it WhiteNoise serves straight from the app folders.
STATIC_ROOT = os.environ.get("DJANGO_STATIC_ROOT") or None
WHITENOISE_USE_FINDERS = STATIC_ROOT is None
# Static files keep their names (Django's default storage, no content hashes): the page's ES modules
# (conversations/chat/) import each other by relative name, which a hashing storage would only rewrite
# with support_js_module_import_aggregation on.
# The page's front-end libraries, installed from npm by scripts/setup-frontend.sh (pinned in
# package-lock.json), served under static/vendor/. Only their built files, not all of node_modules.
_NODE_MODULES = BASE_DIR / "node_modules"
STATICFILES_DIRS = [
    ("vendor/marked", _NODE_MODULES / "marked" / "lib"),
    ("vendor/dompurify", _NODE_MODULES / "dompurify" / "dist"),
    ("vendor/highlight", _NODE_MODULES / "@highlightjs" / "cdn-assets"),
    ("vendor/chartjs", _NODE_MODULES / "chart.js" / "dist"),  # the admin's usage charts
]
# axe-core (package.json too) is not served: the accessibility tests inject it from node_modules/.

# --- Attachments (conversations/attachments/store.py; docs/attachments.md) ---
# Where uploads are kept: the local filesystem by default (`make run`).
CHAT_MEDIA_ROOT = Path(os.environ.get("CHAT_MEDIA_ROOT") or BASE_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "attachments": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(CHAT_MEDIA_ROOT / "attachments"), "base_url": None},
    },
}
# Any S3-compatible store instead (django-storages): files stay private (no ACL, no public URL) and are
# only ever served through the owner's view, so any instance serves any upload.
CHAT_S3_BUCKET = os.environ.get("CHAT_S3_BUCKET", "").strip()
if CHAT_S3_BUCKET:
    STORAGES["attachments"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": CHAT_S3_BUCKET,
            "endpoint_url": os.environ.get("CHAT_S3_ENDPOINT_URL", "").strip() or None,
            "region_name": os.environ.get("CHAT_S3_REGION", "").strip() or None,
            "access_key": os.environ.get("CHAT_S3_ACCESS_KEY_ID", "").strip() or None,
            "secret_key": os.environ.get("CHAT_S3_SECRET_ACCESS_KEY", "").strip() or None,
            "location": os.environ.get("CHAT_S3_PREFIX", "attachments").strip(),
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
CHAT_ATTACHMENT_MAX_BYTES = int(env_float("CHAT_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024))
CHAT_ATTACHMENTS_PER_MESSAGE = int(env_float("CHAT_ATTACHMENTS_PER_MESSAGE", 5))
CHAT_ATTACHMENT_MESSAGE_MAX_BYTES = int(env_float("CHAT_ATTACHMENT_MESSAGE_MAX_BYTES", 25 * 1024 * 1024))
# The bytes of files (images, PDFs read as files) one upstream request carries, newest first: older ones
# are left out with a note. At least CHAT_ATTACHMENT_MESSAGE_MAX_BYTES, so a message's own files go.
CHAT_REQUEST_ATTACHMENT_MAX_BYTES = int(env_float("CHAT_REQUEST_ATTACHMENT_MAX_BYTES", 25 * 1024 * 1024))
# Threads per instance that read those files when a reply starts: bounds the files in memory at once.
CHAT_REQUEST_FILE_READERS = max(1, int(env_float("CHAT_REQUEST_FILE_READERS", 2)))
CHAT_ATTACHMENT_QUOTA_BYTES = int(env_float("CHAT_ATTACHMENT_QUOTA_BYTES", 200 * 1024 * 1024))  # per owner
# Uploads are decoded in CHAT_UPLOAD_WORKERS worker processes (conversations/attachments/workers.py), never in
# a request's thread: each may use CHAT_UPLOAD_WORKER_MEMORY_MB of address space and
# CHAT_UPLOAD_WORKER_CPU_SECONDS of CPU per file, and is killed past CHAT_UPLOAD_WORKER_WALL_SECONDS; an
# upload that finds every worker busy for CHAT_UPLOAD_WAIT_SECONDS gets 503 `attachments_busy`. A worker
# is replaced after CHAT_UPLOAD_WORKER_TASKS files. Workers × memory is what decoding can take in all.
CHAT_UPLOAD_WORKERS = max(1, int(env_float("CHAT_UPLOAD_WORKERS", 2)))
CHAT_UPLOAD_WORKER_MEMORY_MB = int(env_float("CHAT_UPLOAD_WORKER_MEMORY_MB", 512))
CHAT_UPLOAD_WORKER_CPU_SECONDS = max(1, int(env_float("CHAT_UPLOAD_WORKER_CPU_SECONDS", 10)))
CHAT_UPLOAD_WORKER_WALL_SECONDS = env_float("CHAT_UPLOAD_WORKER_WALL_SECONDS", 20)
CHAT_UPLOAD_WAIT_SECONDS = env_float("CHAT_UPLOAD_WAIT_SECONDS", 5)
CHAT_UPLOAD_WORKER_TASKS = int(env_float("CHAT_UPLOAD_WORKER_TASKS", 200))
# An image that would decode to more pixels is refused before it is decoded (a JPEG is decoded at the
# smallest of 1/1, 1/2, 1/4, 1/8 scale that still gives CHAT_ATTACHMENT_MAX_SIDE); what is decoded is cut
# to CHAT_ATTACHMENT_MAX_SIDE pixels on its longest side (what models read: providers downscale further).
# 25 million RGBA pixels decode to 100 MB, twice that while Pillow copies them: within a worker's memory.
CHAT_ATTACHMENT_MAX_PIXELS = int(env_float("CHAT_ATTACHMENT_MAX_PIXELS", 25_000_000))
CHAT_ATTACHMENT_MAX_SIDE = int(env_float("CHAT_ATTACHMENT_MAX_SIDE", 2048))
# A JPEG with more scans is refused before it is decoded (a progressive one has about ten).
CHAT_ATTACHMENT_MAX_JPEG_SCANS = int(env_float("CHAT_ATTACHMENT_MAX_JPEG_SCANS", 50))
CHAT_ATTACHMENT_MAX_PDF_PAGES = int(env_float("CHAT_ATTACHMENT_MAX_PDF_PAGES", 100))
# One PDF's text extraction in all: drawing operators read (a form's each time it is drawn), XObjects
# drawn and characters kept; past any of them the PDF is refused.
CHAT_PDF_MAX_OPERATORS = int(env_float("CHAT_PDF_MAX_OPERATORS", 200_000))
CHAT_PDF_MAX_FORM_DRAWS = int(env_float("CHAT_PDF_MAX_FORM_DRAWS", 1_000))
CHAT_PDF_MAX_TEXT_CHARS = int(env_float("CHAT_PDF_MAX_TEXT_CHARS", 1_000_000))
# A PDF without a text layer is read by the API's OCR after its upload returns, for at most this long.
CHAT_OCR_TIMEOUT = env_float("CHAT_OCR_TIMEOUT", 30)
# The OCR is paid with the operator's key: anonymous owners get none unless this is on; each owner may
# have this many pages read per UTC day (0: no limit); this many reads run at once per process, and this
# many more wait (beyond, a scan is kept without text).
CHAT_ANONYMOUS_OCR = env_bool("CHAT_ANONYMOUS_OCR", False)
CHAT_OCR_PAGES_PER_DAY = int(env_float("CHAT_OCR_PAGES_PER_DAY", 50))
CHAT_OCR_CONCURRENCY = max(1, int(env_float("CHAT_OCR_CONCURRENCY", 2)))
CHAT_OCR_QUEUE = max(0, int(env_float("CHAT_OCR_QUEUE", 8)))
# A knowledge base's document is cut into chunks of at most this many estimated tokens (a token per four
# characters), and a document may make at most this many chunks (more is refused before it is embedded).
CHAT_KNOWLEDGE_CHUNK_TOKENS = max(16, int(env_float("CHAT_KNOWLEDGE_CHUNK_TOKENS", 400)))
CHAT_KNOWLEDGE_MAX_CHUNKS = max(1, int(env_float("CHAT_KNOWLEDGE_MAX_CHUNKS", 2000)))
# The model that writes a conversation's title after its first reply (a cheap one: a few words from a
# short request); empty: titles stay the cleaned first line of the first message.
CHAT_TITLE_MODEL = os.environ.get("CHAT_TITLE_MODEL", "openai/gpt-5-mini").strip()
CHAT_TITLE_TIMEOUT = env_float("CHAT_TITLE_TIMEOUT", 10)
# `manage.py attachments_cleanup` (from cron, every few minutes) removes uploads no message named within
# this many hours: an upload is sent within minutes, and one never sent only takes room.
CHAT_ATTACHMENT_UNSENT_HOURS = env_float("CHAT_ATTACHMENT_UNSENT_HOURS", 1)
# The bytes (files and their stored text) of all uploads no message named yet, on the whole server; past
# it uploads get 503 `attachment_storage_full` until some are sent or swept. 0: no budget.
CHAT_UNSENT_UPLOADS_MAX_BYTES = int(env_float("CHAT_UNSENT_UPLOADS_MAX_BYTES", 1024 * 1024 * 1024))
# Anonymous owners' uploads per client address (a new browser session is a new owner, not a new
# address): uploads per window, counted before any decoding, and bytes kept per day. Empty / 0: no limit.
CHAT_ANONYMOUS_UPLOAD_RATE = os.environ.get("CHAT_ANONYMOUS_UPLOAD_RATE", "20/hour").strip()
CHAT_ANONYMOUS_UPLOAD_BYTES_PER_DAY = int(env_float("CHAT_ANONYMOUS_UPLOAD_BYTES_PER_DAY", 50 * 1024 * 1024))
# An upload's body goes to a temporary file past this, never all into memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# Request bodies are held to a size at the server's door (chatproject/request_bodies.py), before the app
# or any parser reads them: an upload to CHAT_ATTACHMENT_MAX_BYTES plus this much multipart envelope
# (its boundaries and part headers), any other request to CHAT_REQUEST_MAX_BYTES (forms and JSON are small).
CHAT_ATTACHMENT_ENVELOPE_BYTES = int(env_float("CHAT_ATTACHMENT_ENVELOPE_BYTES", 64 * 1024))
CHAT_REQUEST_MAX_BYTES = int(env_float("CHAT_REQUEST_MAX_BYTES", 1024 * 1024))
# A body refused while it arrives is still read (and dropped) for at most this long, so that a client that
# sends it all before reading gets the 413 rather than a reset connection; then the connection closes.
CHAT_REFUSED_BODY_DRAIN_SECONDS = env_float("CHAT_REFUSED_BODY_DRAIN_SECONDS", 10)

# --- Sign-in throttling (django-axes; the chat's login page and the admin's) ---
# CHAT_LOGIN_FAILURE_LIMIT failed sign-ins for one username from one address lock that pair out (429,
# even with the right password) for CHAT_LOGIN_LOCKOUT_MINUTES. Failures are rows in the database, so
# every instance counts them together; a successful sign-in clears them. CHAT_LOGIN_ADDRESS_FAILURE_LIMIT
# failures from one address, whatever the usernames, within CHAT_LOGIN_LOCKOUT_MINUTES of each other lock
# the address out for as long (0: no limit per address); a sign-in clears only its own username's.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: it refuses a locked-out pair before any password check
    # Django's password check, off with CHAT_PASSWORD_LOGIN=0; it still reads back every session's user.
    "conversations.accounts.passwords.PasswordLoginBackend",
]
CHAT_LOGIN_FAILURE_LIMIT = int(env_float("CHAT_LOGIN_FAILURE_LIMIT", 5))
CHAT_LOGIN_LOCKOUT_MINUTES = env_float("CHAT_LOGIN_LOCKOUT_MINUTES", 15)
CHAT_LOGIN_ADDRESS_FAILURE_LIMIT = int(env_float("CHAT_LOGIN_ADDRESS_FAILURE_LIMIT", 30))
AXES_ENABLED = CHAT_LOGIN_FAILURE_LIMIT > 0
AXES_FAILURE_LIMIT = max(CHAT_LOGIN_FAILURE_LIMIT, 1)
AXES_COOLOFF_TIME = timedelta(minutes=CHAT_LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_HANDLER = "conversations.accounts.logins.AddressThrottlingHandler"
AXES_RESET_ON_SUCCESS = True
# Daphne runs with --proxy-headers, so REMOTE_ADDR already is the address nginx forwarded.
AXES_CLIENT_IP_CALLABLE = "conversations.accounts.logins.client_address"
AXES_DISABLE_ACCESS_LOG = True  # failures are what it needs; no row per successful sign-in
AXES_VERBOSE = False

# --- Single sign-on (OpenID Connect; conversations/accounts/single_sign_on.py; docs/teams.md) ---
# Password sign-in (the chat's login page and the admin's); off: only the providers below sign anyone in.
CHAT_PASSWORD_LOGIN = env_bool("CHAT_PASSWORD_LOGIN", True)
# The providers, a JSON list of {"id", "name", "issuer", "client_id", "secret"}; the admin's *Social
# applications* (provider "OpenID Connect") add more. A provider's `sub` claim names the account.
CHAT_OIDC_PROVIDERS = env_json("CHAT_OIDC_PROVIDERS", [])
# The claim whose values are synced into Django groups at each sign-in (empty: no sync), and the names
# they take (JSON, claim value -> group name); with CHAT_OIDC_GROUPS_UNMAPPED=0, unmapped values are ignored.
CHAT_OIDC_GROUPS_CLAIM = os.environ.get("CHAT_OIDC_GROUPS_CLAIM", "").strip()
CHAT_OIDC_GROUP_MAP = env_json("CHAT_OIDC_GROUP_MAP", {})
CHAT_OIDC_GROUPS_UNMAPPED = env_bool("CHAT_OIDC_GROUPS_UNMAPPED", True)
# Values of the groups claim (before the map) that make the user staff, or superuser, at each sign-in;
# empty: the admin decides alone.
CHAT_OIDC_STAFF_VALUE = os.environ.get("CHAT_OIDC_STAFF_VALUE", "").strip()
CHAT_OIDC_SUPERUSER_VALUE = os.environ.get("CHAT_OIDC_SUPERUSER_VALUE", "").strip()
OIDC_PROVIDER_FIELDS = ("id", "name", "issuer", "client_id", "secret")
if not isinstance(CHAT_OIDC_PROVIDERS, list) or not all(
    isinstance(provider, dict)
    and set(provider) == set(OIDC_PROVIDER_FIELDS)
    and all(isinstance(provider[field], str) and provider[field].strip() for field in OIDC_PROVIDER_FIELDS)
    for provider in CHAT_OIDC_PROVIDERS
):
    raise ImproperlyConfigured(
        'CHAT_OIDC_PROVIDERS must be a JSON list of {"id", "name", "issuer", "client_id", "secret"}, '
        "each a non-empty string."
    )
if not all(re.fullmatch(r"[A-Za-z0-9_-]{1,40}", provider["id"]) for provider in CHAT_OIDC_PROVIDERS):
    raise ImproperlyConfigured(
        "A CHAT_OIDC_PROVIDERS id is 1 to 40 letters, digits, - or _ (it is in the URLs)."
    )
if len({provider["id"] for provider in CHAT_OIDC_PROVIDERS}) < len(CHAT_OIDC_PROVIDERS):
    raise ImproperlyConfigured("CHAT_OIDC_PROVIDERS names the same id twice.")
if not isinstance(CHAT_OIDC_GROUP_MAP, dict) or not all(
    isinstance(name, str) and name.strip() and len(name) <= 150 for name in CHAT_OIDC_GROUP_MAP.values()
):
    raise ImproperlyConfigured(
        "CHAT_OIDC_GROUP_MAP must be a JSON object of claim value -> group name (1 to 150 characters)."
    )
if (CHAT_OIDC_STAFF_VALUE or CHAT_OIDC_SUPERUSER_VALUE) and not CHAT_OIDC_GROUPS_CLAIM:
    raise ImproperlyConfigured(
        "CHAT_OIDC_STAFF_VALUE and CHAT_OIDC_SUPERUSER_VALUE need CHAT_OIDC_GROUPS_CLAIM."
    )
# allauth: every provider's flow uses state and PKCE; a provider's account is found by its `sub` only (no
# sign-in or connection by e-mail); an account is made at the first sign-in, never through a form.
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [
            {
                "provider_id": provider["id"],
                "name": provider["name"],
                "client_id": provider["client_id"],
                "secret": provider["secret"],
                "settings": {"server_url": provider["issuer"].rstrip("/"), "oauth_pkce_enabled": True},
            }
            for provider in CHAT_OIDC_PROVIDERS
        ],
    }
}
SOCIALACCOUNT_ADAPTER = "conversations.accounts.single_sign_on.ProviderAccountAdapter"
ACCOUNT_ADAPTER = "conversations.accounts.single_sign_on.LocalAccountAdapter"
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = False
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_LOGIN_ON_GET = False  # a sign-in starts from a POST (the sign-in page's buttons), never a link
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_UNIQUE_EMAIL = False

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# --- Colleagues without an identity provider (conversations/accounts/; docs/teams.md) ---
# An invitation's link works this many days, once.
CHAT_INVITE_DAYS = env_float("CHAT_INVITE_DAYS", 7)
if CHAT_INVITE_DAYS <= 0:
    raise ImproperlyConfigured("CHAT_INVITE_DAYS must be more than 0.")
# `closed`: accounts come from the admin and invitations only; `approval`: anyone may ask for one on
# /accounts/signup/, which stays inactive until an operator approves it in the admin.
CHAT_SIGNUP = os.environ.get("CHAT_SIGNUP", "closed").strip().lower() or "closed"
if CHAT_SIGNUP not in {"closed", "approval"}:
    raise ImproperlyConfigured('CHAT_SIGNUP must be "closed" or "approval".')
# Sign-up forms posted per client address (each costs a password hash); empty: no limit.
CHAT_SIGNUP_RATE_LIMIT = os.environ.get("CHAT_SIGNUP_RATE_LIMIT", "5/hour").strip()
# Sign-ups waiting for approval, on the whole server; past it the page takes no more until some are
# approved or refused; 0: no cap.
CHAT_SIGNUP_PENDING_MAX = int(env_float("CHAT_SIGNUP_PENDING_MAX", 100))
# The address invitation links start with, e.g. https://chat.example.com (what people open); unset:
# the admin uses the address it was reached at, and `manage.py invite` needs --base-url.
CHAT_PUBLIC_URL = os.environ.get("CHAT_PUBLIC_URL", "").strip().rstrip("/")
if CHAT_PUBLIC_URL and not CHAT_PUBLIC_URL.startswith(("https://", "http://")):
    raise ImproperlyConfigured(
        "CHAT_PUBLIC_URL must start with https:// (or http://), e.g. https://chat.example.com."
    )
# Mail: configured when DJANGO_EMAIL_HOST is set (an invitation with an address is then also mailed).
EMAIL_HOST = os.environ.get("DJANGO_EMAIL_HOST", "").strip()
EMAIL_PORT = int(env_float("DJANGO_EMAIL_PORT", 25))
EMAIL_HOST_USER = os.environ.get("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("DJANGO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS")
EMAIL_USE_SSL = env_bool("DJANGO_EMAIL_USE_SSL")
EMAIL_TIMEOUT = 10  # seconds: an unreachable mail server must not hold the admin's request for long
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "webmaster@localhost").strip()

LOGIN_URL = "conversations:login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

# --- Deployment (docs/operations.md, "Production settings"): all off by default so plain-HTTP runs work ---
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT")
SECURE_HSTS_SECONDS = int(env_float("DJANGO_SECURE_HSTS_SECONDS", 0))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD")
if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER"):
    # Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips it from clients).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = env_bool("DJANGO_USE_X_FORWARDED_HOST")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# No inline script anywhere; styles may be inline for the admin's sake. connect-src 'self' covers the
# same-origin ws:/wss: socket.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# CHAT_LOG_FORMAT=json: one JSON object per line (with every `extra` field), for log pipelines.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "conversations.logs.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if os.environ.get("CHAT_LOG_FORMAT", "plain") == "json" else "plain",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("CHAT_LOG_LEVEL", "INFO")},
    "loggers": {
        "daphne": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        # Procrastinate tells of every task it adds at each start of any process; its jobs' lines stay.
        "procrastinate.blueprints": {"level": "WARNING"},
        # Django's own console handler (DEBUG only) would print every request a second time, bare.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        # A 4xx is the client's, and the access log (runserver's, Daphne's, nginx's) has its line already;
        # a 5xx is still logged, with its traceback.
        "django.request": {"level": "ERROR"},
    },
}

# --- Dedalus upstream ---
DEDALUS_API_KEY = os.environ.get("DEDALUS_API_KEY", "").strip()
DEDALUS_BASE_URL = os.environ.get("DEDALUS_BASE_URL", "").strip() or None
if DEDALUS_BASE_URL and DEDALUS_BASE_URL.rstrip("/").endswith("/v1"):
    raise ImproperlyConfigured(
        "DEDALUS_BASE_URL must not end in /v1: the server adds /v1/chat/completions itself."
    )
# Where MCP credentials are encrypted to: the authorisation server's JWKS (the SDK's DEDALUS_AS_URL).
DEDALUS_AS_URL = os.environ.get("DEDALUS_AS_URL", "").strip() or "https://as.dedaluslabs.ai"
# Its public key is kept this long, and fetched again at once when a request with credentials fails.
CHAT_MCP_KEY_TTL_SECONDS = env_float("CHAT_MCP_KEY_TTL_SECONDS", 3600)
# Fernet keys that seal MCP credentials at rest, newest first (see conversations/mcp/sealing.py).
CHAT_CREDENTIALS_KEYS = env_list("CHAT_CREDENTIALS_KEYS", [])

# --- Chat behaviour (all CHAT_* settings are documented in docs/configuration.md) ---
CHAT_MAX_MESSAGE_CHARS = int(env_float("CHAT_MAX_MESSAGE_CHARS", 32_000))
CHAT_MAX_MCP_SERVERS = int(env_float("CHAT_MAX_MCP_SERVERS", 8))
# Signed-in users may build agents of their own ("My agents"): at most CHAT_USER_AGENTS_MAX each, with
# instructions of at most CHAT_USER_AGENT_INSTRUCTIONS_CHARS characters. Off: the operator's agents only.
CHAT_USER_AGENTS = env_bool("CHAT_USER_AGENTS", True)
CHAT_USER_AGENTS_MAX = int(env_float("CHAT_USER_AGENTS_MAX", 20))
CHAT_USER_AGENT_INSTRUCTIONS_CHARS = int(env_float("CHAT_USER_AGENT_INSTRUCTIONS_CHARS", 8000))
CHAT_UPSTREAM_CONNECT_TIMEOUT = env_float("CHAT_UPSTREAM_CONNECT_TIMEOUT", 5.0)
CHAT_UPSTREAM_FIRST_TOKEN_TIMEOUT = env_float("CHAT_UPSTREAM_FIRST_TOKEN_TIMEOUT", 60.0)
CHAT_UPSTREAM_IDLE_TIMEOUT = env_float("CHAT_UPSTREAM_IDLE_TIMEOUT", 30.0)
CHAT_UPSTREAM_TOTAL_TIMEOUT = env_float("CHAT_UPSTREAM_TOTAL_TIMEOUT", 600.0)
CHAT_UPSTREAM_MAX_RETRIES = int(env_float("CHAT_UPSTREAM_MAX_RETRIES", 2))
CHAT_UPSTREAM_MAX_CONNECTIONS = int(env_float("CHAT_UPSTREAM_MAX_CONNECTIONS", 100))
CHAT_FLUSH_INTERVAL = env_float("CHAT_FLUSH_INTERVAL", 2.0)
# A reply's chunk frames go out at most this often (the first at once): text that arrives meanwhile
# waits in the upstream socket and leaves as one frame. A page draws at most once per display frame, so
# a faster model costs the server and the browser a frame per token for nothing.
CHAT_CHUNK_INTERVAL_MS = env_float("CHAT_CHUNK_INTERVAL_MS", 16)
CHAT_REQUIRE_LOGIN = env_bool("CHAT_REQUIRE_LOGIN")
# Cookie-less clients may chat on the original page's socket path (`/ws/<id>`), in one shared namespace.
CHAT_PUBLIC_SOCKETS = env_bool("CHAT_PUBLIC_SOCKETS", True)
# Each instance re-reads the sessions of its open sockets this often (one query for all of them) and
# closes those whose session expired or was purged (4401); a logout closes its sockets at once.
CHAT_SOCKET_SESSION_CHECK_SECONDS = env_float("CHAT_SOCKET_SESSION_CHECK_SECONDS", 60.0)
# Shown on the page when the server talks to the local stand-in instead of the real API.
CHAT_STANDIN_NOTICE = env_bool("CHAT_STANDIN_NOTICE")
# A streaming reply's server renews its lease every third of this; a lapsed lease means it died.
CHAT_REPLY_LEASE_SECONDS = env_float("CHAT_REPLY_LEASE_SECONDS", 30.0)
# On SIGTERM, replies in flight get this long to finish before they are stored as interrupted.
CHAT_SHUTDOWN_GRACE_SECONDS = env_float("CHAT_SHUTDOWN_GRACE_SECONDS", 20.0)
CHAT_RESYNC_PAGE_CHARS = int(env_float("CHAT_RESYNC_PAGE_CHARS", 16_000))
CHAT_HISTORY_PAGE = int(env_float("CHAT_HISTORY_PAGE", 50))
CHAT_UPSTREAM_RETRY_BACKOFF = env_float("CHAT_UPSTREAM_RETRY_BACKOFF", 0.5)
# How long the Redis log of a reply lives: while it streams, and after it ended (for late joiners).
CHAT_REPLY_LOG_TTL_SECONDS = int(env_float("CHAT_REPLY_LOG_TTL_SECONDS", 3600))
CHAT_REPLY_LOG_KEEP_SECONDS = int(env_float("CHAT_REPLY_LOG_KEEP_SECONDS", 120))
# The reply log gathers entries this long before a write (a reply's first text excepted): every socket
# sees text that much later, and each pipeline carries several replies' merged deltas.
CHAT_REPLY_LOG_BATCH_MS = env_float("CHAT_REPLY_LOG_BATCH_MS", 20)
# A reply's own sockets get its text once the reply log holds it (what a lost reply keeps). A write that
# takes longer than this (Redis hangs or is down) leaves the reply's text to be shown as the database
# stores it (every CHAT_FLUSH_INTERVAL) until it ends.
CHAT_REPLY_LOG_WAIT_SECONDS = env_float("CHAT_REPLY_LOG_WAIT_SECONDS", 1.0)

# --- Limits (per owner: a user, or an anonymous browser session) ---
CHAT_RATE_LIMIT = os.environ.get("CHAT_RATE_LIMIT", "20/minute").strip()  # empty: no limit
CHAT_DAILY_TOKEN_QUOTA = int(env_float("CHAT_DAILY_TOKEN_QUOTA", 0))  # 0: no quota
# Messages from anonymous owners per client address (a new browser session resets the per-owner limit).
CHAT_ANONYMOUS_RATE_LIMIT = os.environ.get("CHAT_ANONYMOUS_RATE_LIMIT", "100/hour").strip()
# Replies streaming at once per owner, across conversations and instances; 0: no limit.
CHAT_MAX_REPLIES_PER_OWNER = int(env_float("CHAT_MAX_REPLIES_PER_OWNER", 3))
CHAT_MAX_SOCKETS_PER_OWNER = int(env_float("CHAT_MAX_SOCKETS_PER_OWNER", 20))  # 0: no limit
CHAT_MAX_FRAME_BYTES = int(env_float("CHAT_MAX_FRAME_BYTES", 256 * 1024))
# Frames of every type one socket may send (a page sends a few per turn and scroll); empty: no limit.
CHAT_SOCKET_FRAME_RATE = os.environ.get("CHAT_SOCKET_FRAME_RATE", "60/10 seconds").strip()
# A socket whose client leaves more than this unread (beyond the transport's 64 KiB buffer) is closed.
CHAT_MAX_UNSENT_BYTES = int(env_float("CHAT_MAX_UNSENT_BYTES", 4 * 1024 * 1024))
# Server frames stay under Daphne's 1 MiB message cap: history is paged by size to fit this, long
# texts are split, and a frame that would still be larger is never sent (the socket would be closed).
CHAT_MAX_SERVER_FRAME_BYTES = int(env_float("CHAT_MAX_SERVER_FRAME_BYTES", 768 * 1024))
# A tool's arguments or result longer than this (as JSON) is stored and shown cut, with a note.
CHAT_MAX_TOOL_RESULT_CHARS = int(env_float("CHAT_MAX_TOOL_RESULT_CHARS", 64 * 1024))
# A reply's reasoning (the model's thinking before it answers) past this many characters is dropped.
CHAT_MAX_REASONING_CHARS = int(env_float("CHAT_MAX_REASONING_CHARS", 64 * 1024))

# --- The OpenAI-compatible API (conversations/openai_api/; docs/openai-api.md) ---
# The longest a user's API key may live, in days (a key asked for without an expiry gets this); 0: no limit.
CHAT_API_KEY_MAX_DAYS = int(env_float("CHAT_API_KEY_MAX_DAYS", 0))
# Keys a user may hold at once: a revoked one frees its place, an expired one only once revoked.
CHAT_API_KEYS_PER_USER = int(env_float("CHAT_API_KEYS_PER_USER", 10))
# Requests a minute per key unless the key names its own; 0: no limit.
CHAT_API_KEY_RATE_LIMIT = int(env_float("CHAT_API_KEY_RATE_LIMIT", 60))
# Browser origins that may call /v1/ (CORS), e.g. https://app.example.com; `*`: any; empty: no CORS.
CHAT_API_CORS_ORIGINS = env_list("CHAT_API_CORS_ORIGINS", [])
# Seconds a streamed chat completion may stay silent before a `: ping` comment keeps proxies from closing it.
CHAT_API_PING_SECONDS = env_float("CHAT_API_PING_SECONDS", 15.0)

# --- Share links (conversations/sharing/shares.py; docs/sharing.md) ---
# A snapshot holds at most this many messages and this many bytes (as JSON): sharing a longer active
# branch is refused (`share_too_large`), and so is continuing a snapshot stored before a lower cap.
CHAT_SHARE_MAX_MESSAGES = int(env_float("CHAT_SHARE_MAX_MESSAGES", 200))
CHAT_SHARE_MAX_BYTES = int(env_float("CHAT_SHARE_MAX_BYTES", 512 * 1024))
# "Continue this conversation" copies a snapshot: per viewer, and for anonymous viewers per client address
# (each cookie-less post is a new viewer); empty: no limit.
CHAT_SHARE_CONTINUE_RATE_LIMIT = os.environ.get("CHAT_SHARE_CONTINUE_RATE_LIMIT", "10/hour").strip()
CHAT_ANONYMOUS_SHARE_CONTINUE_RATE_LIMIT = os.environ.get(
    "CHAT_ANONYMOUS_SHARE_CONTINUE_RATE_LIMIT", "10/hour"
).strip()

# --- Operations ---
CHAT_METRICS_TOKEN = os.environ.get("CHAT_METRICS_TOKEN", "").strip()  # set: /metrics needs this bearer token
CHAT_READY_UPSTREAM_TIMEOUT = env_float("CHAT_READY_UPSTREAM_TIMEOUT", 3.0)
# /readyz answers from its last round of checks for this long: a flood of requests costs one round.
CHAT_READY_CACHE_SECONDS = env_float("CHAT_READY_CACHE_SECONDS", 2.0)
CHAT_RETENTION_DAYS = int(env_float("CHAT_RETENTION_DAYS", 0))  # for `manage.py chat_retention`; 0: keep all
