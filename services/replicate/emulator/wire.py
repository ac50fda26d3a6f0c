"""What the emulator reads from requests and writes in responses.

Authentication by bearer token, `Prefer: wait`, JSON bodies of bounded depth,
the webhook fields of a create, the JSON of models and versions, and file
responses with Range support.
"""

from __future__ import annotations

import hmac
import json
from typing import Any, Final
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from services import decoding
from services.authorization import AuthorizationError, bearer_token
from services.decoding import decimal
from services.replicate.emulator.emulator import Emulator
from services.replicate.emulator.predictions import WEBHOOK_EVENTS
from services.replicate.emulator.problems import (
    bad_request,
)
from services.replicate.emulator.specs import InvalidField, ModelSpec
from services.replicate.emulator.store import StoredFile


def base_url(emulator: Emulator, request: Request) -> str:
    """`public_url`, or the URL this request came in on (including a mount's prefix)."""
    return emulator.config.public_url or str(request.base_url).rstrip("/")


MAX_WAIT_SECONDS: Final = 60
MAX_JSON_DEPTH: Final = 64
COG_VERSION: Final = "0.9.13"


def api_token(request: Request) -> str | None:
    """The token of `Authorization: Bearer <token>` or Replicate's `Token <token>`;
    None without one, and for a malformed one or several (the request is refused)."""
    try:
        return bearer_token(request.headers.getlist("authorization"), schemes=("bearer", "token"))
    except AuthorizationError:
        return None


def authenticated(emulator: Emulator, request: Request) -> bool:
    """Whether the request carries the configured API token (`config.api_token`), as
    `Authorization: Bearer <token>` (https://replicate.com/docs/reference/http#authentication)
    or `Token <token>`; compared in constant time. Always True when no token is set.
    """
    expected = emulator.config.api_token
    if not expected:
        return True
    given = api_token(request)
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def parse_prefer_wait(header: str | None) -> int | None:
    """Seconds to hold a create for `Prefer: wait[=N]`; None without; ValueError if invalid.

    `Prefer` is RFC 7240's header (comma-separated preferences); a bare `wait` means
    `MAX_WAIT_SECONDS` (60), N must be ASCII digits from 1 to 60, as Replicate's sync
    mode allows (https://replicate.com/docs/topics/predictions/create-a-prediction#sync-mode).
    """
    if not header:
        return None
    for preference in header.split(","):
        name, equals, value = preference.strip().partition("=")
        if name.strip().lower() != "wait":
            continue
        if not equals:
            return MAX_WAIT_SECONDS
        seconds = decimal(value.strip().strip('"'), low=1, high=MAX_WAIT_SECONDS)
        if seconds is None:
            raise ValueError(f"wait must be an integer between 1 and {MAX_WAIT_SECONDS}")
        return seconds
    return None


async def json_body(request: Request) -> tuple[Any, Response | None]:
    """The request's JSON body and None, or None and the 400 problem response to send.

    An empty (or all-whitespace) body reads as {}. Refused with 400: anything
    `services.decoding.loads` refuses (not JSON, NaN or Infinity, nested deeper than
    `MAX_JSON_DEPTH`, 64). The value may be any JSON type: callers check its shape.
    Raises nothing of its own.
    """
    raw = await request.body()
    if not raw.strip():
        return {}, None
    try:
        # No NaN/Infinity (not JSON, and Replicate's parser refuses them), bounded nesting.
        return decoding.loads(raw, max_depth=MAX_JSON_DEPTH), None
    except decoding.MalformedJson:
        return None, bad_request("The request body is not valid JSON.")


def check_webhook_fields(body: dict[str, Any]) -> tuple[dict[str, Any], list[InvalidField]]:
    """`webhook`, `webhook_completed` and `webhook_events_filter`, checked.

    Returns `({"webhook": url | None, "webhook_completed": url | None, "events":
    frozenset of event names | None}, problems)`: a URL must be absolute http(s); each
    event one of `WEBHOOK_EVENTS` (start, output, logs, completed:
    https://replicate.com/docs/topics/webhooks/receive-webhook). What fails stays None
    in the dict and is described in `problems` (for a 422), never raised.
    """
    problems: list[InvalidField] = []
    found: dict[str, Any] = {"webhook": None, "webhook_completed": None, "events": None}
    for name in ("webhook", "webhook_completed"):
        value = body.get(name)
        if value is None:
            continue
        parts = urlsplit(value) if isinstance(value, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(InvalidField("format", name, "Does not match format 'uri'"))
        else:
            found[name] = value
    events = body.get("webhook_events_filter")
    if events is not None:
        if not isinstance(events, list) or not all(isinstance(event, str) for event in events):
            problems.append(
                InvalidField(
                    "invalid_type",
                    "webhook_events_filter",
                    "Invalid type. Expected: array of strings",
                )
            )
        else:
            allowed = ", ".join(json.dumps(event) for event in WEBHOOK_EVENTS)
            for index, event in enumerate(events):
                if event not in WEBHOOK_EVENTS:
                    problems.append(
                        InvalidField(
                            "enum",
                            f"webhook_events_filter.{index}",
                            f"webhook_events_filter.{index} must be one of the following: "
                            + allowed,
                        )
                    )
            found["events"] = frozenset(events)
    return found, problems


def model_json(emulator: Emulator, spec: ModelSpec) -> dict[str, Any]:
    """The model object of `GET /v1/models/{owner}/{name}`
    (https://replicate.com/docs/reference/http#models.get): url, owner, name,
    description, visibility, is_official, run_count (this emulator's predictions of
    it), latest_version (`version_json`) and the links Replicate may leave null.
    """
    runs = sum(1 for record in emulator.predictions.values() if record.spec is spec)
    return {
        "url": f"https://replicate.com/{spec.ref}",
        "owner": spec.owner,
        "name": spec.name,
        "description": spec.description,
        "visibility": "public",
        "is_official": spec.official,
        "github_url": None,
        "paper_url": None,
        "license_url": None,
        "run_count": runs,
        "cover_image_url": None,
        "default_example": None,
        "latest_version": version_json(spec),
    }


def version_json(spec: ModelSpec) -> dict[str, Any]:
    """The version object Replicate answers (`latest_version`, and
    `GET /v1/models/{owner}/{name}/versions/{id}`): id (64 hex), created_at,
    cog_version and openapi_schema (the Input and Output schemas Cog publishes).
    """
    return {
        "id": spec.version,
        "created_at": spec.created_at,
        "cog_version": COG_VERSION,
        "openapi_schema": spec.openapi_schema(),
    }


def file_response(stored: StoredFile) -> Response | None:
    """The file as Replicate's delivery network sends it: Content-Type, Content-Length,
    ETag and Last-Modified, byte ranges (several at once as multipart/byteranges) and
    If-Range, all by Starlette's FileResponse. None if it expired a moment ago."""
    try:
        stat = stored.path.stat()
    except FileNotFoundError:
        return None
    return FileResponse(
        stored.path,
        media_type=stored.content_type,
        stat_result=stat,
        headers={"cache-control": "public, max-age=3600"},
    )
