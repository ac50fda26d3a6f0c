"""A prediction's state and its JSON, field for field as Replicate's API returns it.

The object, its statuses and `urls` follow Replicate's HTTP API reference
(https://replicate.com/docs/reference/http#predictions.get); the webhook events
are those of `webhook_events_filter`
(https://replicate.com/docs/topics/webhooks/receive-webhook).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from services.replicate.emulator.specs import ModelSpec

Status = Literal["starting", "processing", "succeeded", "failed", "canceled"]
TERMINAL: Final[frozenset[str]] = frozenset({"succeeded", "failed", "canceled"})
WEBHOOK_EVENTS: Final = ("start", "output", "logs", "completed")
_ID_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz234567"


def new_prediction_id() -> str:
    """A Replicate-like id: 26 characters of lowercase base32."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(26))


def utc_now() -> datetime:
    """The current time, an aware UTC datetime."""
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with microseconds and a `Z`, as Replicate writes timestamps."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class PredictionRecord:
    """One prediction, from creation to (and after) its data being removed.

    `seq` counts creations (the list is newest first, and its cursors name a
    `seq`); `base_url` is the emulator's origin as the creating request saw it
    (for `urls`); `latency_seconds` is how long it spends starting and processing.
    """

    id: str
    seq: int
    spec: ModelSpec
    input: dict[str, Any]
    base_url: str
    latency_seconds: float
    webhook: str | None = None
    webhook_completed: str | None = None
    events: frozenset[str] = frozenset(WEBHOOK_EVENTS)
    # Decided at creation by fault injection: this prediction will end `failed`.
    doomed: bool = False
    status: Status = "starting"
    created_at: datetime = field(default_factory=utc_now)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    logs: str = ""
    output: Any = None
    error: str | None = None
    data_removed: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)
    # Keys of this prediction's files in the store, and when (`time.time()`) they go.
    output_keys: list[str] = field(default_factory=list)
    output_expires_at: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    # When the last `logs` / `output` webhook was sent (monotonic), for throttling.
    last_progress_event: dict[str, float] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        """Whether it has ended (succeeded, failed or canceled)."""
        return self.status in TERMINAL

    def append_logs(self, *lines: str) -> None:
        """Add lines to `logs`, each ended by a newline."""
        self.logs += "".join(f"{line}\n" for line in lines)

    def urls(self) -> dict[str, str]:
        """`{"get": ..., "cancel": ...}`: the prediction's API URLs."""
        get = f"{self.base_url}/v1/predictions/{self.id}"
        return {"get": get, "cancel": f"{get}/cancel"}

    def to_json(self) -> dict[str, Any]:
        """The prediction object of `GET /v1/predictions/{id}` (and of webhooks)."""
        return {
            "id": self.id,
            "model": self.spec.ref,
            "version": self.spec.version,
            "input": self.input,
            "logs": self.logs,
            "output": None if self.data_removed else self.output,
            "data_removed": self.data_removed,
            "error": self.error,
            "status": self.status,
            "source": "api",
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "completed_at": iso(self.completed_at),
            "urls": self.urls(),
            "metrics": dict(self.metrics),
        }
