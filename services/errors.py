"""Domain errors: every expected failure a client can cause.

    StudioError                 base; carries a stable `code`, a `message` for a person
    |                           and the `field` path of the input it concerns
    +-- InvalidInput            the input is malformed or out of bounds
    |                           (BLANK, TOO_LONG, OUT_OF_RANGE, INVALID_ID, INVALID_URL,
    |                           INVALID_INVITATION, PERSONAL_TEAM, ...)
    +-- NotFound                NOT_FOUND: no such object, or not one the actor may see
    +-- PermissionDenied        FORBIDDEN: visible, but the actor may not change it
    +-- Conflict                the change contradicts the stored state
    |                           (EMAIL_TAKEN, ALREADY_MEMBER, TOO_MANY_INVITATIONS,
    |                           DUPLICATE_VARIANT, ...)
    +-- AuthenticationFailed    INVALID_CREDENTIALS
    +-- ValidationFailed        several of the above at once, from one input
    +-- ProviderUnavailable     PROVIDER_UNAVAILABLE: Replicate is down or the circuit is open
    +-- ProviderRejected        PROVIDER_REJECTED: Replicate refused the request itself
    +-- RateLimited             RATE_LIMITED: over a limit (services/request_limits/); `retry_after`
                                says in how many seconds to try again (None: when another ends)

Resolvers turn these into `userErrors`; anything else is a fault of ours, masked
for clients and logged in full. Another team's object is always `NotFound`,
never `PermissionDenied`, so existence does not leak.
"""

from __future__ import annotations

from collections.abc import Sequence

FieldPath = tuple[str, ...]


class StudioError(Exception):
    """An expected failure, reported to the client as a `UserError`."""

    code = "ERROR"

    def __init__(self, message: str, *, code: str | None = None, field: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.field: FieldPath = tuple(field)
        if code is not None:
            self.code = code

    @property
    def errors(self) -> list[StudioError]:
        """The individual failures this error stands for."""
        return [self]


class InvalidInput(StudioError):
    code = "INVALID_INPUT"


class NotFound(StudioError):
    code = "NOT_FOUND"

    def __init__(self, what: str = "object", *, field: Sequence[str] = ()) -> None:
        super().__init__(f"No {what} with that ID exists, or you cannot see it.", field=field)


class PermissionDenied(StudioError):
    code = "FORBIDDEN"


class Conflict(StudioError):
    code = "CONFLICT"


class AuthenticationFailed(StudioError):
    code = "INVALID_CREDENTIALS"


class ValidationFailed(StudioError):
    """Several input problems found at once, so a client can fix them in one go."""

    code = "INVALID_INPUT"

    def __init__(self, errors: Sequence[StudioError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self._errors = list(errors)

    @property
    def errors(self) -> list[StudioError]:
        return list(self._errors)


class ProviderUnavailable(StudioError):
    """Replicate cannot be reached or keeps failing; nothing was started."""

    code = "PROVIDER_UNAVAILABLE"


class ProviderRejected(StudioError):
    """Replicate refused the request itself (for example, an input it does not accept)."""

    code = "PROVIDER_REJECTED"


class RateLimited(StudioError):
    """Over a limit; `retry_after` is the whole seconds to wait, or None when it is not a
    matter of time (too many subscriptions open: one must end first)."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: int | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
