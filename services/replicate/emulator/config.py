"""The emulator's settings: timing, identity, limits, and fault injection.

One mutable `EmulatorConfig` is shared by everything in a running emulator and
read at the moment each decision is made, so changing a field (in-process, or via
`POST /_emulator/faults`) takes effect for the next request or prediction.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field

from services.replicate.signatures import SECRET_PREFIX, secret_key

WEBHOOK_SECRET_PREFIX = SECRET_PREFIX


def generate_webhook_secret() -> str:
    """A new Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def webhook_secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (prefix required); `ValueError` if not one."""
    if not secret.startswith(WEBHOOK_SECRET_PREFIX):
        raise ValueError("webhook_secret must look like whsec_<base64>")
    try:
        return secret_key(secret)
    except ValueError as error:
        raise ValueError(f"webhook_secret: {error}") from error


@dataclass
class EmulatorConfig:
    """Everything that shapes the emulator's behaviour.

    Timing and identity:
        latency_ms: how long a prediction spends in `starting` + `processing`.
        webhook_secret: the `whsec_<base64>` secret webhooks are signed with
            (generated when not given); `GET /v1/webhooks/default/secret` returns it,
            to a request carrying `api_token`.
        public_url: the emulator's own base URL, for `urls.get`/`urls.cancel`, file
            URLs and pagination links. Empty: taken from each request's base URL.
        output_ttl_seconds: outputs are deleted this long after a prediction ends;
            their URLs then 404 and the prediction shows `data_removed: true`.
        file_ttl_seconds: how long an upload to `/v1/files` lives.
        api_token: when set, every API request needs `Authorization: Bearer <token>`
            (or `Token <token>`), as on Replicate. Unset, the API is open (for tests),
            except `GET /v1/webhooks/default/secret`, which then answers 401 to everyone.

    Limits (a sliding 60 s window per token):
        create_limit_per_minute, other_limit_per_minute: 600 and 3000 by default,
            Replicate's (https://replicate.com/docs/topics/predictions/rate-limits).

    Faults (all may change while the emulator runs):
        failure_rate: fraction of predictions that end `failed`.
        throttle_rate: fraction of create calls answered 429 regardless of the window.
        webhook_duplicate_rate / webhook_drop_rate: fraction of webhook events
            delivered twice (same `webhook-id`) / never.
        webhook_shuffle: deliver each prediction's webhooks out of order.
        down: every API call answers 503.
        create_response_delay_ms: a create makes its prediction at once but answers
            this much later, like a slow network on the way back: a client that
            dies meanwhile never learns the prediction's id.

    Reproducibility:
        seed: seeds one `random.Random` behind every random choice (faults, webhook
            order, a model's seed when the input gives none). None: unpredictable.
    """

    latency_ms: int = 1500
    webhook_secret: str = field(default_factory=generate_webhook_secret)
    public_url: str = ""
    output_ttl_seconds: float = 3600.0
    file_ttl_seconds: float = 24 * 3600.0
    create_limit_per_minute: int = 600
    other_limit_per_minute: int = 3000
    api_token: str | None = None
    failure_rate: float = 0.0
    throttle_rate: float = 0.0
    webhook_duplicate_rate: float = 0.0
    webhook_drop_rate: float = 0.0
    webhook_shuffle: bool = False
    down: bool = False
    create_response_delay_ms: int = 0
    # Webhook delivery: attempts per event (first try included), the first retry's
    # delay (doubling after), and how long a receiver may take to answer.
    webhook_max_attempts: int = 4
    webhook_retry_seconds: float = 0.5
    webhook_timeout_seconds: float = 5.0
    # Replicate sends `logs` and `output` webhooks at most once per 500 ms each
    # (https://replicate.com/changelog/2023-02-10-improved-webhook-events-and-event-filtering).
    webhook_progress_interval_seconds: float = 0.5
    # Results per page of `GET /v1/predictions` (Replicate's is 100).
    page_size: int = 100
    # Input files (URLs, data URIs, uploads): size cap and fetch timeout.
    max_input_bytes: int = 50 * 1024 * 1024
    input_fetch_timeout_seconds: float = 10.0
    # Input URLs must be public, as for Replicate; these `host[:port]`s may be
    # fetched anyway (tests serving inputs on a loopback port).
    input_allowed_hosts: tuple[str, ...] = ()
    # Seed of every random choice the emulator makes (which requests fault, webhook
    # order, the seed a model picks when the input names none), to make a run
    # reproducible; None: unpredictable. Ids and secrets stay unpredictable.
    seed: int | None = None

    def __post_init__(self) -> None:
        webhook_secret_key(self.webhook_secret)
        self.public_url = self.public_url.rstrip("/")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        if self.page_size < 1:
            raise ValueError("page_size must be at least 1")
        if self.webhook_max_attempts < 1:
            raise ValueError("webhook_max_attempts must be at least 1")
