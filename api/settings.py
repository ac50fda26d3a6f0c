"""Settings, read once at start-up from the environment (and an optional `.env`).

With no configuration at all the server runs on the embedded default: an SQLite
file under `STUDIO_DATA_DIR` and a secret key generated once and kept beside it.
Anything else must be configured for real: a missing or placeholder
`SECRET_KEY` is refused.

Secrets (and URLs that may hold a password) are `SecretStr`: they print as
`**********` in reprs, logs and tracebacks. Only the composition root
(`api.app`, `api.cli`) unwraps them, to hand plain values to what needs them.
"""

from __future__ import annotations

import inspect
import ipaddress
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from strawberry.http.websocket_origin import normalize_allowed_origins

from api.urls import base_url, http_url_problem
from services.outbound import parse_allowed_hosts
from services.request_limits.policy import parse_rates

PLACEHOLDER_SECRETS = frozenset(
    {"changethis", "change-me", "changeme", "secret", "dev", "test", "xxx"}
)
MIN_SECRET_LENGTH = 32
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
DATABASE_DRIVERS = ("postgresql+asyncpg", "sqlite+aiosqlite")
EVENT_BUS_SCHEMES = ("memory", "redis", "rediss", "postgres", "postgresql")
REDIS_SCHEMES = ("redis", "rediss")
HTTP_SCHEMES = ("http", "https")
MAX_PORT = 65535

# Upper bounds: past them a value is a mistake, or breaks something (a timer past what
# the event loop can schedule, a count past what fits the open-file limit or memory).
HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY
YEAR = 365 * DAY
HOUR_MS = 3_600_000
MAX_DAYS = 36_500.0
"""A hundred years; `timedelta(days=...)` overflows past 999,999,999."""
MAX_COUNT = 1_000_000
MAX_QUEUE = 10_000_000
MAX_PARALLEL = 1024
MAX_TRIES = 1000
MAX_REDIRECTS = 100
MAX_REQUEST_BYTES = 1024**3
"""A request body is read into memory whole: 1 GiB."""
MAX_DOWNLOAD_BYTES = 1024**4
MAX_HASH_MEMORY_KIB = 4 * 1024 * 1024
"""4 GiB per hash; RFC 9106's first recommended option uses 2 GiB."""
MAX_HASH_ITERATIONS = 100
ARGON2_MIN_KIB_PER_LANE = 8
"""Argon2 needs at least 8 KiB of memory per lane (RFC 9106 section 3.1)."""

SQLITE_QUERY = frozenset(
    {"timeout", "isolation_level", "detect_types", "check_same_thread", "cached_statements", "uri"}
)
"""What SQLAlchemy's pysqlite dialect takes from a URL's query (its `create_connect_args`)."""
ASYNCPG_NOT_FROM_URL = frozenset({"dsn", "loop", "connection_class", "record_class"})
ASYNCPG_QUERY = frozenset(
    (set(inspect.signature(asyncpg.connect).parameters) - ASYNCPG_NOT_FROM_URL)
    | {"prepared_statement_cache_size"}  # SQLAlchemy's asyncpg dialect's own
)
"""The query parameters a postgresql+asyncpg URL may have: the installed asyncpg's
`connect()` keyword arguments and SQLAlchemy's own. SQLAlchemy passes every other
one on to asyncpg.connect, which refuses it (TypeError) at the first connection."""


class SettingsError(Exception):
    """The configuration cannot be used; the message says how to fix it."""


class Settings(BaseSettings):
    # hide_input_in_errors: a value that fails validation is never repeated in the
    # error (it may be a password or a URL holding one); see `load_settings`.
    # allow_inf_nan=False: no setting means anything as inf or nan (an infinite timeout
    # is no timeout).
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", hide_input_in_errors=True, allow_inf_nan=False
    )

    database_url: SecretStr | None = Field(
        default=None,
        description="postgresql+asyncpg://user@host/db or sqlite+aiosqlite:///path; "
        "unset: the embedded SQLite file.",
    )
    secret_key: SecretStr | None = Field(
        default=None, description="Signs media URLs; 32+ characters."
    )
    public_url: str | None = Field(
        default=None, description="The URL clients reach this server at; default http://HOST:PORT."
    )
    studio_data_dir: Path = Field(
        default=Path(".studio"), description="Where the embedded default keeps its files."
    )
    log_level: str = Field(
        default="INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL (any case)."
    )
    max_request_bytes: int = Field(
        default=2 * 1024 * 1024,
        le=MAX_REQUEST_BYTES,
        gt=0,
        description="The largest request body accepted (413 past it).",
    )
    database_pool_timeout_seconds: float = Field(
        default=30.0,
        le=DAY,
        gt=0,
        description="How long an operation waits for a free database connection before "
        "it is answered SERVICE_UNAVAILABLE (503 over HTTP before it runs).",
    )
    body_read_timeout_seconds: float = Field(
        default=30.0,
        le=DAY,
        gt=0,
        description="A request body must arrive whole within this long after its headers; "
        "else 408 and the connection is closed.",
    )
    max_connections: int = Field(
        default=1000,
        le=MAX_COUNT,
        gt=0,
        description="Open connections past which HTTP requests get 503, and open WebSockets past "
        "which handshakes get 503; keep it below the open-file limit (ulimit -n) less about 100 "
        "for the database, Redis and files.",
    )
    websocket_init_timeout_seconds: float = Field(
        default=5.0,
        le=HOUR,
        gt=0,
        description="A WebSocket must be signed in (its connection_init acknowledged) within "
        "this long after it opens; else it is closed with 4408.",
    )
    max_unsigned_websockets_per_address: int = Field(
        default=10,
        le=MAX_COUNT,
        gt=0,
        description="WebSockets one address may have open, per server process, before their "
        "connection_init is acknowledged; past it handshakes get 429.",
    )
    listen_backlog: int = Field(
        default=2048,
        le=65535,
        gt=0,
        description="Connections the kernel queues before they are accepted.",
    )
    keep_alive_seconds: int = Field(
        default=5,
        le=DAY,
        gt=0,
        description="How long an idle HTTP keep-alive connection stays open.",
    )
    media_root: Path | None = Field(
        default=None, description="Where generated media is kept; default STUDIO_DATA_DIR/media."
    )
    replicate_api_token: SecretStr | None = Field(
        default=None,
        description="Talk to Replicate itself (or, with REPLICATE_BASE_URL, to an emulator "
        "started with the same token); unset: the built-in emulator.",
    )
    replicate_base_url: str | None = Field(
        default=None, description="Replicate's API (or an emulator's) base URL, without /v1."
    )
    replicate_webhook_secret: SecretStr | None = Field(
        default=None, description="whsec_... secret; fetched from the API when unset."
    )
    emulator_latency_ms: int = Field(
        default=1500,
        ge=0,
        le=HOUR_MS,
        description="How long the built-in emulator takes per prediction.",
    )
    emulator_log_requests: bool = Field(
        default=False,
        description="Log a line per request the built-in emulator answers; unset, it logs "
        "only its warnings and errors.",
    )
    generation_poll_seconds: float = Field(
        default=2.0, gt=0, le=HOUR, description="How often running predictions are checked on."
    )
    replicate_call_timeout_seconds: float = Field(
        default=20.0,
        le=HOUR,
        gt=0,
        description="The time budget of one call to Replicate, all its tries included.",
    )
    replicate_retry_after_cap_seconds: float = Field(
        default=10.0,
        le=HOUR,
        ge=0,
        description="The longest Retry-After honoured; a longer one is shortened to this.",
    )
    replicate_post_attempts: int = Field(
        default=4,
        le=MAX_TRIES,
        ge=1,
        description="Tries of a create, cancel or upload on 429/503 (reads: the client's own).",
    )
    generation_max_tries: int = Field(
        default=5,
        le=MAX_TRIES,
        ge=1,
        description="Failed tries (submit or poll) after which a generation is FAILED.",
    )
    generation_claim_seconds: float = Field(
        default=120.0,
        le=DAY,
        gt=0,
        description="How long a server's claim on an unsubmitted generation holds "
        "if that server stops without releasing it.",
    )
    event_bus_url: SecretStr = Field(
        default=SecretStr("memory://"),
        description="memory:// (one process), redis://host:6379/0, or postgres://user@host/db "
        "(LISTEN/NOTIFY); every server of one studio must share it.",
    )
    allowed_origins: str = Field(
        default="",
        description="Comma-separated origins whose pages may open GraphQL WebSockets "
        "(same-origin pages and non-browser clients always may); * for any.",
    )
    event_retention_days: float = Field(
        default=7.0,
        gt=0,
        le=MAX_DAYS,
        description="How long project events stay replayable with `after`.",
    )
    subscription_queue_size: int = Field(
        default=256,
        ge=1,
        le=MAX_COUNT,
        description="Events a subscriber may fall behind before it reads on from the table.",
    )
    # --- limits (services/request_limits/; the README's Security section explains each) ---
    limits_url: SecretStr | None = Field(
        default=None,
        description="Where limit counters live: memory:// (this process) or redis://...; "
        "unset: EVENT_BUS_URL when that is redis://, else memory://. Servers sharing one "
        "studio must share it, or each counts on its own.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or networks of reverse proxies whose "
        "X-Forwarded-For (and X-Forwarded-Proto) is believed; * for any. Empty: the "
        "connecting address is the client's, and forwarded headers are ignored.",
    )
    rate_limit_graphql: str = Field(
        default="600/minute",
        description="Operations per client (its user when signed in, else its address) on "
        "/graphql: each HTTP request and each operation over a WebSocket. The notation of "
        "the `limits` package, several joined by `;` (e.g. `20/second;600/minute`); empty: none.",
    )
    rate_limit_media: str = Field(
        default="3000/minute", description="Requests per address on /media; empty: none."
    )
    rate_limit_sign_up: str = Field(
        default="20/hour", description="signUp attempts per address; empty: none."
    )
    rate_limit_ipv6_prefix: int = Field(
        default=64,
        ge=8,
        le=128,
        description="IPv6 clients share every per-address limit (requests, /media, signUp, "
        "logIn waits, WebSocket handshakes) per network of this many leading bits; one "
        "host usually holds a whole /64. IPv4 clients are keyed by their address.",
    )
    max_input_list_length: int = Field(
        default=1000,
        le=MAX_COUNT,
        ge=1,
        description="The longest list any GraphQL variable may hold, refused before the "
        "variables are read into inputs; each list argument also has its own smaller limit.",
    )
    max_subscriptions_per_connection: int = Field(
        default=100,
        le=MAX_COUNT,
        ge=1,
        description="Subscriptions open at once on one WebSocket (or SSE request).",
    )
    max_subscriptions_per_user: int = Field(
        default=500,
        le=MAX_COUNT,
        ge=1,
        description="Subscriptions one user has open at once, on every server.",
    )
    subscription_lease_seconds: float = Field(
        default=60.0,
        le=DAY,
        ge=1,
        description="How long a server's count of a subscription outlives the server if it "
        "dies without closing it; renewed every third of it.",
    )
    login_free_failures: int = Field(
        default=5,
        le=MAX_COUNT,
        ge=0,
        description="Failed logIns of one account from one address before each further "
        "attempt must wait (1 s, then doubling up to LOGIN_MAX_DELAY_SECONDS).",
    )
    login_address_free_failures: int = Field(
        default=30,
        le=MAX_COUNT,
        ge=0,
        description="Failed logIns from one address, to any account, before waits.",
    )
    login_account_free_failures: int = Field(
        default=100,
        le=MAX_COUNT,
        ge=0,
        description="Failed logIns of one account from every address before waits "
        "(capped at LOGIN_ACCOUNT_MAX_DELAY_SECONDS). These waits hold back only an address "
        "that failed on the account itself since it last signed in to it, so no one can "
        "keep the owner out.",
    )
    login_base_delay_seconds: float = Field(
        default=1.0,
        le=DAY,
        gt=0,
        description="The first wait after the free failures; it doubles each time.",
    )
    login_max_delay_seconds: float = Field(
        default=900.0,
        le=WEEK,
        gt=0,
        description="The longest wait per account and address, or per address.",
    )
    login_account_max_delay_seconds: float = Field(
        default=30.0,
        le=WEEK,
        gt=0,
        description="The longest wait for an account, counted over every address.",
    )
    login_failure_memory_seconds: float = Field(
        default=3600.0,
        le=YEAR,
        gt=0,
        description="How long failures are remembered after the last one.",
    )
    invitation_lifetime_days: float = Field(
        default=7.0,
        le=MAX_DAYS,
        gt=0,
        description="How long a team invitation code can be accepted.",
    )
    max_pending_invitations: int = Field(
        default=100,
        le=MAX_COUNT,
        ge=1,
        description="How many unexpired invitations a team may have at once.",
    )
    # Argon2id parameters: RFC 9106 section 4, second recommended option, by default
    # (see services.accounts.passwords); a stored hash made with others is redone at its
    # next log-in.
    password_hash_memory_kib: int = Field(
        default=65536,
        le=MAX_HASH_MEMORY_KIB,
        ge=8,
        description="Argon2id memory per password hash, in KiB.",
    )
    password_hash_iterations: int = Field(
        default=3, le=MAX_HASH_ITERATIONS, ge=1, description="Argon2id passes over that memory."
    )
    password_hash_lanes: int = Field(
        default=4, le=MAX_PARALLEL, ge=1, description="Argon2id parallel lanes."
    )
    password_hash_concurrency: int = Field(
        default=4,
        le=MAX_PARALLEL,
        ge=1,
        description="How many password hashes may run at once (each needs its memory).",
    )
    outbound_allowed_hosts: str = Field(
        default="",
        description="Comma-separated host[:port]s whose provider outputs may be downloaded "
        "although they are not public addresses (an emulator's file host); never applies "
        "to URLs clients give.",
    )
    outbound_max_image_bytes: int = Field(
        default=25 * 1024 * 1024,
        le=MAX_DOWNLOAD_BYTES,
        ge=1,
        description="The largest image the server downloads.",
    )
    outbound_max_video_bytes: int = Field(
        default=200 * 1024 * 1024,
        le=MAX_DOWNLOAD_BYTES,
        ge=1,
        description="The largest video the server downloads.",
    )
    outbound_connect_timeout_seconds: float = Field(
        default=5.0, le=HOUR, gt=0, description="How long a download may take to connect."
    )
    outbound_read_timeout_seconds: float = Field(
        default=20.0, le=HOUR, gt=0, description="How long a download may wait for the next bytes."
    )
    outbound_total_timeout_seconds: float = Field(
        default=120.0, le=DAY, gt=0, description="How long one download may take in all."
    )
    outbound_max_redirects: int = Field(
        default=5,
        le=MAX_REDIRECTS,
        ge=0,
        description="Redirects a download follows (each one checked).",
    )
    copy_max_tries: int = Field(
        default=5,
        le=MAX_TRIES,
        ge=1,
        description="Tries to copy an output or an imported image into storage before "
        "giving up on it.",
    )
    copy_retry_seconds: float = Field(
        default=10.0, le=DAY, ge=0, description="How long a failed copy waits before its next try."
    )
    copy_concurrency: int = Field(
        default=4,
        le=MAX_PARALLEL,
        ge=1,
        description="Copies into storage running at once, per server.",
    )
    event_outbox_size: int = Field(
        default=10_000,
        le=MAX_QUEUE,
        gt=0,
        description="Events a server may hold for the bus while it is slow or down; beyond "
        "that its subscribers are told to resync from the events table.",
    )
    subscription_fanout_concurrency: int = Field(
        default=32,
        le=MAX_PARALLEL,
        gt=0,
        description="Subscribers of one server that work on events at once; the rest wait "
        "their turn, so requests never queue behind thousands of them.",
    )
    websocket_compression: bool = Field(
        default=True,
        description="Offer permessage-deflate on WebSockets: far smaller frames for large "
        "messages, but about 40 kB more memory per connection and CPU for every frame.",
    )
    subscription_fanout_lease_seconds: float = Field(
        default=1.0,
        le=HOUR,
        gt=0,
        description="How long one subscriber may keep its turn (a client that stopped "
        "reading cannot keep it).",
    )

    @field_validator(
        "database_url",
        "secret_key",
        "public_url",
        "replicate_api_token",
        "replicate_base_url",
        "replicate_webhook_secret",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("public_url", "replicate_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and (problem := http_url_problem(value)) is not None:
            raise ValueError(problem)
        return value

    @field_validator("secret_key")
    @classmethod
    def _key(cls, value: SecretStr | None) -> SecretStr | None:
        # A passphrase with spaces is a good key; a control character is a paste gone wrong.
        if value is not None and not value.get_secret_value().isprintable():
            raise ValueError("must be printable characters (no tabs, newlines or controls)")
        return value

    @field_validator("replicate_api_token", "replicate_webhook_secret")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        # Sent in an HTTP header, or decoded as base64: no room for spaces.
        if value is not None and not _is_token(value.get_secret_value()):
            raise ValueError("must be printable characters without spaces")
        return value

    @field_validator("studio_data_dir", "media_root", mode="before")
    @classmethod
    def _directory(cls, value: Any) -> Any:
        if isinstance(value, str) and (not value.strip() or "\0" in value):
            raise ValueError("must be a directory path")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        if (problem := database_url_problem(value.get_secret_value())) is not None:
            raise ValueError(problem)
        return value

    @field_validator("event_bus_url")
    @classmethod
    def _event_bus_url(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value().strip()
        scheme, separator, _ = url.partition("://")
        if not separator or scheme.lower() not in EVENT_BUS_SCHEMES:
            raise ValueError(
                "must be memory://, redis://host:6379/0 (or rediss://) or postgres://user@host/db"
            )
        if (problem := _service_url_problem(url)) is not None:
            raise ValueError(problem)
        return SecretStr(url)

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("limits_url")
    @classmethod
    def _limits_store(cls, value: SecretStr | None) -> SecretStr | None:
        url = value.get_secret_value().strip() if value is not None else ""
        if not url:
            return None
        if not url.startswith(("memory://", "redis://", "rediss://")):
            raise ValueError("must be memory:// or redis://host:6379/0 (or rediss://)")
        if (problem := _service_url_problem(url)) is not None:
            raise ValueError(problem)
        return SecretStr(url)

    @field_validator("rate_limit_graphql", "rate_limit_media", "rate_limit_sign_up")
    @classmethod
    def _rates_parse(cls, value: str) -> str:
        try:
            parse_rates(value)
        except ValueError:
            raise ValueError(
                "is not a rate: write e.g. `600/minute` or `20/second;600/minute`, "
                "or leave it empty for no limit"
            ) from None
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        entries = _entries(value)
        if "*" in entries and len(entries) > 1:
            raise ValueError("* (any origin) must stand alone")
        for number, entry in enumerate(entries, 1):
            if entry != "*" and (problem := origin_problem(entry)) is not None:
                raise ValueError(f"entry {number}: {problem}")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        entries = _entries(value)
        if "*" in entries and len(entries) > 1:
            raise ValueError("* (any proxy) must stand alone")
        for number, entry in enumerate(entries, 1):
            if entry == "*":
                continue
            try:
                # As uvicorn's ProxyHeadersMiddleware reads an entry: a network (strict,
                # no host bits set) if it has a /, else an address. It takes anything
                # else as a literal host name that no client address ever equals.
                if "/" in entry:
                    ipaddress.ip_network(entry)
                else:
                    ipaddress.ip_address(entry)
            except ValueError:
                raise ValueError(
                    f"entry {number} is not an IP address or network: write e.g. "
                    "10.0.0.5, 10.0.0.0/8 or fd00::/8 (no host bits set past the prefix)"
                ) from None
        return value

    @field_validator("outbound_allowed_hosts")
    @classmethod
    def _outbound_hosts(cls, value: str) -> str:
        for number, entry in enumerate(_entries(value), 1):
            if (problem := host_port_problem(entry)) is not None:
                raise ValueError(f"entry {number}: {problem}")
        return value

    @field_validator("password_hash_lanes")
    @classmethod
    def _argon2_memory(cls, lanes: int, info: ValidationInfo) -> int:
        memory = info.data.get("password_hash_memory_kib")
        if memory is not None and memory < ARGON2_MIN_KIB_PER_LANE * lanes:
            raise ValueError(
                f"each lane needs {ARGON2_MIN_KIB_PER_LANE} KiB of PASSWORD_HASH_MEMORY_KIB: "
                "give fewer lanes or more memory"
            )
        return lanes

    @property
    def embedded(self) -> bool:
        """Whether this runs on the embedded default (nothing configured)."""
        return self.database_url is None

    @property
    def sqlite_path(self) -> Path:
        return self.studio_data_dir.resolve() / "studio.db"

    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite+aiosqlite:///{self.sqlite_path}"

    def resolved_secret_key(self) -> str:
        """The configured key; on the embedded default, one generated once and kept on disk.

        Raises SettingsError for a key that is missing, a placeholder or too short, and
        for a generated one that cannot be written or read in STUDIO_DATA_DIR.
        """
        key = self.secret_key.get_secret_value() if self.secret_key is not None else None
        if key is None and self.embedded:
            path = self.studio_data_dir / "secret_key"
            try:
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(secrets.token_urlsafe(48))
                    path.chmod(0o600)
                key = path.read_text().strip()
            except (OSError, UnicodeDecodeError) as error:
                reason = getattr(error, "strerror", None) or "not a text file"
                raise SettingsError(
                    f"STUDIO_DATA_DIR: cannot keep the generated SECRET_KEY in {path}: "
                    f"{reason}; give the directory to this user, or set SECRET_KEY"
                ) from None
        if key is None:
            raise SettingsError(
                "SECRET_KEY is not set. Set it to a random string of 32 or more characters, "
                "for example the output of:\n"
                "  python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        if key.lower() in PLACEHOLDER_SECRETS or len(key) < MIN_SECRET_LENGTH:
            raise SettingsError(
                f"SECRET_KEY looks like a placeholder or is shorter than {MIN_SECRET_LENGTH} "
                "characters; set a real random secret."
            )
        return key

    @property
    def proxies(self) -> list[str]:
        """TRUSTED_PROXIES as a list (empty: trust none)."""
        return [proxy.strip() for proxy in self.trusted_proxies.split(",") if proxy.strip()]

    def resolved_limits_url(self) -> str:
        """Where limit counters live: LIMITS_URL, else a Redis event bus, else this process."""
        if self.limits_url is not None:
            return self.limits_url.get_secret_value()
        bus = self.event_bus_url.get_secret_value()
        return bus if bus.startswith(("redis://", "rediss://")) else "memory://"

    @property
    def origins(self) -> list[str]:
        return [origin.strip() for origin in self.allowed_origins.split(",") if origin.strip()]

    def resolved_public_url(self, host: str, port: int) -> str:
        """PUBLIC_URL, else `http://HOST:PORT` (an IPv6 HOST in brackets); no trailing slash."""
        return (self.public_url or base_url(host, port)).rstrip("/")

    @property
    def resolved_media_root(self) -> Path:
        return (self.media_root or self.studio_data_dir / "media").resolve()

    @property
    def uses_emulator(self) -> bool:
        """No Replicate configured: run the built-in emulator in this process."""
        return self.replicate_api_token is None and self.replicate_base_url is None

    def webhook_url(self) -> str | None:
        """Where Replicate should post updates: only to an address set on purpose."""
        return f"{self.public_url.rstrip('/')}/webhooks/replicate" if self.public_url else None


def _entries(value: str) -> list[str]:
    """The non-empty entries of a comma-separated setting, stripped."""
    return [entry.strip() for entry in value.split(",") if entry.strip()]


def _is_token(value: str) -> bool:
    return value.isprintable() and not any(character.isspace() for character in value)


def _port_problem(url: str) -> str | None:
    """Why the port of `url` is wrong (None if it has none, or a good one)."""
    try:
        port = urlsplit(url).port
    except ValueError:
        return f"not a valid URL (is its port a number 1-{MAX_PORT}? an IPv6 host in [brackets]?)"
    if port is not None and not 1 <= port <= MAX_PORT:
        return f"its port must be 1-{MAX_PORT}"
    return None


def _service_url_problem(url: str) -> str | None:
    """Why an EVENT_BUS_URL or LIMITS_URL cannot be used (None if it can): memory://
    alone; redis(s)://[user:password@]host[:port][/db] with db a number; or
    postgres(ql)://... with a port 1-65535 if it has one."""
    scheme = url.partition("://")[0].lower()
    if scheme == "memory":
        return None if url.lower() == "memory://" else "memory:// takes nothing after it"
    if (problem := _port_problem(url)) is not None:
        return problem
    parts = urlsplit(url)
    if scheme in REDIS_SCHEMES:
        if not parts.hostname:
            return "has no host: write e.g. redis://127.0.0.1:6379/0"
        database = parts.path.removeprefix("/")
        if database and not database.isdigit():
            return "its path must be a database number: write e.g. redis://127.0.0.1:6379/0"
    return None


def database_url_problem(url: str) -> str | None:
    """Why `url` cannot be DATABASE_URL (None if it can), never quoting it: the driver
    must be postgresql+asyncpg (a port 1-65535, query parameters asyncpg takes) or
    sqlite+aiosqlite (a file path, no host)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        parsed = None
    if parsed is None or parsed.drivername not in DATABASE_DRIVERS:
        return (
            "not a database URL: write postgresql+asyncpg://user:password@host:5432/db "
            "or sqlite+aiosqlite:///path/to/file.db"
        )
    if parsed.port is not None and not 1 <= parsed.port <= MAX_PORT:
        return f"its port must be 1-{MAX_PORT}"
    if parsed.drivername == "sqlite+aiosqlite":
        if parsed.host or not parsed.database:
            return "an SQLite URL names a file: sqlite+aiosqlite:///path/to/file.db"
        known = SQLITE_QUERY
    else:
        known = ASYNCPG_QUERY
    unknown = sorted(set(parsed.query) - known)
    if unknown:
        # The parameter's name only: its value may be a password.
        names = ", ".join(name for name in unknown if name.isidentifier()) or "one"
        return f"the driver takes no query parameter {names} (see its connect() arguments)"
    return None


def origin_problem(origin: str) -> str | None:
    """Why `origin` is not an origin a browser sends (None if it is), never quoting it:
    http(s)://host[:port], with no user, path, query or fragment (RFC 6454 section 6.2),
    as Strawberry's `normalize_allowed_origins` takes it."""
    if (problem := _port_problem(origin)) is not None:
        return problem
    parts = urlsplit(origin)
    if parts.scheme.lower() not in HTTP_SCHEMES or not parts.hostname:
        return "not an origin: write e.g. https://app.example.com or http://localhost:3000"
    if "@" in parts.netloc or parts.path not in ("", "/") or parts.query or parts.fragment:
        return (
            "an origin is scheme, host and port only (no user, password, path or query): "
            "write e.g. https://app.example.com"
        )
    try:
        normalize_allowed_origins([origin])
    except ValueError:
        return "not an origin: write e.g. https://app.example.com or http://localhost:3000"
    return None


def host_port_problem(entry: str) -> str | None:
    """Why `entry` is not a `host` or `host:port` (port 1-65535) for
    OUTBOUND_ALLOWED_HOSTS (None if it is), never quoting it."""
    try:
        parse_allowed_hosts([entry])
    except ValueError:
        return "not a host or host:port: write e.g. files.example.com or 127.0.0.1:8001"
    return None


def _problem(error: dict[str, Any]) -> str:
    """One pydantic error as `SETTING: problem`, in words; never the value given."""
    field = str(error["loc"][0]) if error["loc"] else "settings"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error.get("input") == "" and error["type"] != "value_error":
        default = Settings.model_fields[field].default if field in Settings.model_fields else None
        if isinstance(default, bool):
            default = str(default).lower()
        unset = f" ({default})" if default is not None else ""
        message = f"is empty: give a value, or unset it for its default{unset}"
    return f"{field.upper()}: {message}"


def load_settings(**values: Any) -> Settings:
    """Settings from the environment (and `.env`), with `values` over them.

    Raises SettingsError whose message has one line `SETTING: problem` per setting
    that is wrong (e.g. `MAX_CONNECTIONS: Input should be a valid integer, ...`). The
    value given is never in it, since it may be a secret.
    """
    try:
        return Settings(**values)
    except ValidationError as error:
        lines = [_problem(dict(detail)) for detail in error.errors(include_input=True)]
        raise SettingsError("\n".join(lines)) from None
