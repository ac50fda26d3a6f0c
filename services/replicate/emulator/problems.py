"""Error responses as Replicate sends them: RFC 7807 problem details
(https://www.rfc-editor.org/rfc/rfc7807, since revised as RFC 9457).

The `replicate` client reads `type`, `title`, `status`, `detail` and `instance` from
these bodies into `ReplicateError`; a 422 adds `invalid_fields`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse

from services.replicate.emulator.specs import InvalidField
from services.replicate.emulator.validation import problem_detail

PROBLEM_TYPE_BASE = "https://replicate.com/docs/reference/http#"


class ProblemResponse(JSONResponse):
    """A JSON response served as `application/problem+json`."""

    media_type = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    kind: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    """A problem-details response; `kind` names the error type (the tail of `type`)."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + kind,
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


def validation_failed(problems: list[InvalidField]) -> ProblemResponse:
    """422 for input that did not validate; no prediction is created."""
    return problem(
        422,
        "Input validation failed",
        problem_detail(problems),
        kind="input-validation-failed",
        invalid_fields=[item.to_json() for item in problems],
    )


def not_found(detail: str = "The requested resource could not be found.") -> ProblemResponse:
    """404, for an unknown path, prediction, file or model."""
    return problem(404, "Not found", detail, kind="not-found")


def bad_request(detail: str) -> ProblemResponse:
    """400 with `detail` saying what is wrong with the request."""
    return problem(400, "Bad request", detail, kind="bad-request")


def unauthenticated() -> ProblemResponse:
    """401 with a `WWW-Authenticate: Bearer` challenge, which RFC 9110 section 15.5.2
    requires of every 401."""
    return problem(
        401,
        "Unauthenticated",
        "You did not pass a valid authentication token",
        kind="unauthenticated",
        headers={"www-authenticate": 'Bearer realm="replicate"'},
    )


def throttled(retry_after: int) -> ProblemResponse:
    """429 with `Retry-After` in whole seconds (the client's retry honours it)."""
    return problem(
        429,
        "Too Many Requests",
        f"Request was throttled. Expected available in {retry_after} second"
        + ("" if retry_after == 1 else "s")
        + ".",
        kind="rate-limits",
        headers={"retry-after": str(retry_after)},
    )


def unavailable() -> ProblemResponse:
    """503, as every API call answers while the `down` fault is set."""
    return problem(
        503,
        "Service Unavailable",
        "Replicate is temporarily unavailable; try again shortly.",
        kind="service-unavailable",
    )
