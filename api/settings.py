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

import secrets
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from api.urls import base_url, http_url_problem
from services.request_limits.policy import parse_rates

PLACEHOLDER_SECRETS = frozenset(
    {"changethis", "change-me", "changeme", "secret", "dev", "test", "xxx"}
)
MIN_SECRET_LENGTH = 32
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
DATABASE_DRIVERS = ("postgresql+asyncpg", "sqlite+aiosqlite")
EVENT_BUS_SCHEMES = ("memory", "redis", "rediss", "postgres", "postgresql")


class SettingsError(Exception):
    """The configuration cannot be used; the message says how to fix it."""


class Settings(BaseSettings):
    # hide_input_in_errors: a value that fails validation is never repeated in the
    # error (it may be a password or a URL holding one); see `load_settings`.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

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
        gt=0,
        description="The largest request body accepted (413 past it).",
    )
    body_read_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A request body must arrive whole within this long after its headers; "
        "else 408 and the connection is closed.",
    )
    max_connections: int = Field(
        default=1000,
        gt=0,
        description="Open connections past which HTTP requests get 503, and open WebSockets past "
        "which handshakes get 503; keep it below the open-file limit (ulimit -n) less about 100 "
        "for the database, Redis and files.",
    )
    websocket_init_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="A WebSocket must be signed in (its connection_init acknowledged) within "
        "this long after it opens; else it is closed with 4408.",
    )
    max_unsigned_websockets_per_address: int = Field(
        default=10,
        gt=0,
        description="WebSockets one address may have open, per server process, before their "
        "connection_init is acknowledged; past it handshakes get 429.",
    )
    listen_backlog: int = Field(
        default=2048, gt=0, description="Connections the kernel queues before they are accepted."
    )
    keep_alive_seconds: int = Field(
        default=5, gt=0, description="How long an idle HTTP keep-alive connection stays open."
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
        default=1500, description="How long the built-in emulator takes per prediction."
    )
    emulator_log_requests: bool = Field(
        default=False,
        description="Log a line per request the built-in emulator answers; unset, it logs "
        "only its warnings and errors.",
    )
    generation_poll_seconds: float = Field(
        default=2.0, description="How often running predictions are checked on."
    )
    replicate_call_timeout_seconds: float = Field(
        default=20.0,
        gt=0,
        description="The time budget of one call to Replicate, all its tries included.",
    )
    replicate_retry_after_cap_seconds: float = Field(
        default=10.0,
        ge=0,
        description="The longest Retry-After honoured; a longer one is shortened to this.",
    )
    replicate_post_attempts: int = Field(
        default=4,
        ge=1,
        description="Tries of a create, cancel or upload on 429/503 (reads: the client's own).",
    )
    generation_max_tries: int = Field(
        default=5,
        ge=1,
        description="Failed tries (submit or poll) after which a generation is FAILED.",
    )
    generation_claim_seconds: float = Field(
        default=120.0,
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
        default=7.0, description="How long project events stay replayable with `after`."
    )
    subscription_queue_size: int = Field(
        default=256,
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
        ge=1,
        description="The longest list any GraphQL variable may hold, refused before the "
        "variables are read into inputs; each list argument also has its own smaller limit.",
    )
    max_subscriptions_per_connection: int = Field(
        default=100,
        ge=1,
        description="Subscriptions open at once on one WebSocket (or SSE request).",
    )
    max_subscriptions_per_user: int = Field(
        default=500, ge=1, description="Subscriptions one user has open at once, on every server."
    )
    subscription_lease_seconds: float = Field(
        default=60.0,
        ge=1,
        description="How long a server's count of a subscription outlives the server if it "
        "dies without closing it; renewed every third of it.",
    )
    login_free_failures: int = Field(
        default=5,
        ge=0,
        description="Failed logIns of one account from one address before each further "
        "attempt must wait (1 s, then doubling up to LOGIN_MAX_DELAY_SECONDS).",
    )
    login_address_free_failures: int = Field(
        default=30,
        ge=0,
        description="Failed logIns from one address, to any account, before waits.",
    )
    login_account_free_failures: int = Field(
        default=100,
        ge=0,
        description="Failed logIns of one account from every address before waits "
        "(capped at LOGIN_ACCOUNT_MAX_DELAY_SECONDS). These waits hold back only an address "
        "that failed on the account itself since it last signed in to it, so no one can "
        "keep the owner out.",
    )
    login_base_delay_seconds: float = Field(
        default=1.0,
        gt=0,
        description="The first wait after the free failures; it doubles each time.",
    )
    login_max_delay_seconds: float = Field(
        default=900.0, gt=0, description="The longest wait per account and address, or per address."
    )
    login_account_max_delay_seconds: float = Field(
        default=30.0,
        gt=0,
        description="The longest wait for an account, counted over every address.",
    )
    login_failure_memory_seconds: float = Field(
        default=3600.0, gt=0, description="How long failures are remembered after the last one."
    )
    invitation_lifetime_days: float = Field(
        default=7.0, gt=0, description="How long a team invitation code can be accepted."
    )
    max_pending_invitations: int = Field(
        default=100, ge=1, description="How many unexpired invitations a team may have at once."
    )
    # Argon2id parameters: RFC 9106 section 4, second recommended option, by default
    # (see services.accounts.passwords); a stored hash made with others is redone at its
    # next log-in.
    password_hash_memory_kib: int = Field(
        default=65536, ge=8, description="Argon2id memory per password hash, in KiB."
    )
    password_hash_iterations: int = Field(
        default=3, ge=1, description="Argon2id passes over that memory."
    )
    password_hash_lanes: int = Field(default=4, ge=1, description="Argon2id parallel lanes.")
    password_hash_concurrency: int = Field(
        default=4,
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
        default=25 * 1024 * 1024, ge=1, description="The largest image the server downloads."
    )
    outbound_max_video_bytes: int = Field(
        default=200 * 1024 * 1024, ge=1, description="The largest video the server downloads."
    )
    outbound_connect_timeout_seconds: float = Field(
        default=5.0, gt=0, description="How long a download may take to connect."
    )
    outbound_read_timeout_seconds: float = Field(
        default=20.0, gt=0, description="How long a download may wait for the next bytes."
    )
    outbound_total_timeout_seconds: float = Field(
        default=120.0, gt=0, description="How long one download may take in all."
    )
    outbound_max_redirects: int = Field(
        default=5, ge=0, description="Redirects a download follows (each one checked)."
    )
    copy_max_tries: int = Field(
        default=5,
        ge=1,
        description="Tries to copy an output or an imported image into storage before "
        "giving up on it.",
    )
    copy_retry_seconds: float = Field(
        default=10.0, ge=0, description="How long a failed copy waits before its next try."
    )
    copy_concurrency: int = Field(
        default=4, ge=1, description="Copies into storage running at once, per server."
    )
    event_outbox_size: int = Field(
        default=10_000,
        gt=0,
        description="Events a server may hold for the bus while it is slow or down; beyond "
        "that its subscribers are told to resync from the events table.",
    )
    subscription_fanout_concurrency: int = Field(
        default=32,
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

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        try:
            url = make_url(value.get_secret_value())
        except (ArgumentError, ValueError):
            url = None
        if url is None or url.drivername not in DATABASE_DRIVERS:
            raise ValueError(
                "not a database URL: write postgresql+asyncpg://user:password@host:5432/db "
                "or sqlite+aiosqlite:///path/to/file.db"
            )
        return value

    @field_validator("event_bus_url")
    @classmethod
    def _event_bus_url(cls, value: SecretStr) -> SecretStr:
        scheme, separator, _ = value.get_secret_value().strip().partition("://")
        if not separator or scheme.lower() not in EVENT_BUS_SCHEMES:
            raise ValueError(
                "must be memory://, redis://host:6379/0 (or rediss://) or postgres://user@host/db"
            )
        return value

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
        return SecretStr(url)

    @field_validator("rate_limit_graphql", "rate_limit_media", "rate_limit_sign_up")
    @classmethod
    def _rates_parse(cls, value: str) -> str:
        try:
            parse_rates(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a rate: write e.g. `600/minute` or `20/second;600/minute`, "
                "or leave it empty for no limit"
            ) from None
        return value

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
        """The configured key; on the embedded default, one generated once and kept on disk."""
        key = self.secret_key.get_secret_value() if self.secret_key is not None else None
        if key is None and self.embedded:
            path = self.studio_data_dir / "secret_key"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(secrets.token_urlsafe(48))
                path.chmod(0o600)
            key = path.read_text().strip()
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
