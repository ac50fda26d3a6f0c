"""Settings, read once at start-up from the environment (and an optional `.env`).

With no configuration at all the server runs on the embedded default: an SQLite
file under `STUDIO_DATA_DIR` and a secret key generated once and kept beside it.
Anything else must be configured for real: a missing or placeholder
`SECRET_KEY` is refused.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset(
    {"changethis", "change-me", "changeme", "secret", "dev", "test", "xxx"}
)
MIN_SECRET_LENGTH = 32


class SettingsError(Exception):
    """The configuration cannot be used; the message says how to fix it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="postgresql+asyncpg://user@host/db or sqlite+aiosqlite:///path; "
        "unset: the embedded SQLite file.",
    )
    secret_key: str | None = Field(default=None, description="Signs media URLs; 32+ characters.")
    public_url: str | None = Field(
        default=None, description="The URL clients reach this server at; default http://HOST:PORT."
    )
    studio_data_dir: Path = Field(
        default=Path(".studio"), description="Where the embedded default keeps its files."
    )
    log_level: str = "INFO"
    max_request_bytes: int = 2 * 1024 * 1024
    media_root: Path | None = Field(
        default=None, description="Where generated media is kept; default STUDIO_DATA_DIR/media."
    )
    replicate_api_token: str | None = Field(
        default=None, description="Talk to Replicate itself; unset: the built-in emulator."
    )
    replicate_base_url: str | None = Field(
        default=None, description="Replicate's API (or an emulator's) base URL, without /v1."
    )
    replicate_webhook_secret: str | None = Field(
        default=None, description="whsec_... secret; fetched from the API when unset."
    )
    emulator_latency_ms: int = Field(
        default=1500, description="How long the built-in emulator takes per prediction."
    )
    generation_poll_seconds: float = Field(
        default=2.0, description="How often running predictions are checked on."
    )
    event_bus_url: str = Field(
        default="memory://",
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
    )
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @property
    def embedded(self) -> bool:
        """Whether this runs on the embedded default (nothing configured)."""
        return self.database_url is None

    @property
    def sqlite_path(self) -> Path:
        return self.studio_data_dir.resolve() / "studio.db"

    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.sqlite_path}"

    def resolved_secret_key(self) -> str:
        """The configured key; on the embedded default, one generated once and kept on disk."""
        key = self.secret_key
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
    def origins(self) -> list[str]:
        return [origin.strip() for origin in self.allowed_origins.split(",") if origin.strip()]

    def resolved_public_url(self, host: str, port: int) -> str:
        return (self.public_url or f"http://{host}:{port}").rstrip("/")

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
