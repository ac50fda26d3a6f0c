"""Every exception `services/` raises: the domain errors clients see, then the rest.

    StudioError                 base; carries a stable `code`, a `message` for a person
    |                           and the `field` path of the input it concerns
    +-- InvalidInput            the input is malformed or out of bounds
    |   |                       (BLANK, TOO_LONG, OUT_OF_RANGE, INVALID_ID, INVALID_URL,
    |   |                       INVALID_INVITATION, PERSONAL_TEAM, ...)
    |   +-- CursorExpired       CURSOR_EXPIRED: the events after a feed's cursor are no
    |                           longer kept (events)
    +-- NotFound                NOT_FOUND: no such object, or not one the actor may see
    |   +-- AccessLost          a feed's subscriber may no longer see its project (events)
    +-- PermissionDenied        FORBIDDEN: visible, but the actor may not change it
    +-- Conflict                the change contradicts the stored state
    |                           (EMAIL_TAKEN, ALREADY_MEMBER, TOO_MANY_INVITATIONS,
    |                           DUPLICATE_VARIANT, LAST_OWNER, IMAGE_IS_MASTER, ...)
    +-- AuthenticationFailed    INVALID_CREDENTIALS
    +-- ValidationFailed        several of the above at once, from one input
    +-- ProviderUnavailable     PROVIDER_UNAVAILABLE: Replicate is down or the circuit is open
    +-- ProviderRejected        PROVIDER_REJECTED (or PREDICTION_NOT_FOUND): Replicate
    |                           refused the request itself
    +-- RateLimited             RATE_LIMITED: over a limit (services/request_limits/); `retry_after`
                                says in how many seconds to try again (None: when another ends)

Resolvers turn these into `userErrors`; anything else is a fault of ours, masked
for clients and logged in full. Another team's object is always `NotFound`,
never `PermissionDenied`, so existence does not leak.

The exceptions below are not `StudioError`s: each lives in the module named
first, next to the code that raises it, and its caller decides what the client
sees (a 4xx, a `userErrors` entry, a retry later, or a line in the log):

    MalformedJson               decoding: JSON we do not accept (NaN, too deep, broken);
                                a ValueError; its message is safe to show
    FetchError                  outbound: a download did not happen (`reason` for logs)
    +-- FetchRefused            permanent: refused by policy, or a 4xx answer
    |   +-- FetchGone           404 or 410
    +-- FetchUnavailable        transient: DNS, network, timeout, 5xx or 429
    StorageError                storage: a malformed storage key (I/O failures are OSError)
    WebhookRejected             webhooks: a delivery not provably from the provider
    SecretUnavailable           webhooks: no signing secret yet; `retry_after` seconds
    BusError                    bus: cannot publish or deliver now
    +-- SubscriberTooSlow       a subscriber fell too far behind and was cut off
    InputInvalid                emulator.emulator: a prediction's input did not validate
    InputFetchError             emulator.inputs: a file input could not be fetched
    MediaError                  emulator.media: bytes that are no usable image, or ffmpeg
                                failed (both ValueErrors)
"""

from __future__ import annotations

from collections.abc import Sequence

FieldPath = tuple[str, ...]


class StudioError(Exception):
    """An expected failure, reported to the client as a `UserError`.

    message: a sentence for a person; code: a stable upper-case code (the class's
    default unless given); field: the path of the input it concerns, as GraphQL
    argument names (`("images", "0", "variantNumber")`), empty for the whole input.
    """

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
    """The input is malformed or out of bounds; `code` says how (BLANK, TOO_LONG, ...)."""

    code = "INVALID_INPUT"


class NotFound(StudioError):
    """No such object, or one the actor may not see: the two are never told apart.

    `what` names the kind of object in the message ("project", "image").
    """

    code = "NOT_FOUND"

    def __init__(self, what: str = "object", *, field: Sequence[str] = ()) -> None:
        super().__init__(f"No {what} with that ID exists, or you cannot see it.", field=field)


class PermissionDenied(StudioError):
    """The actor sees the object but their role does not let them do this (FORBIDDEN)."""

    code = "FORBIDDEN"


class Conflict(StudioError):
    """The change contradicts what is stored (EMAIL_TAKEN, LAST_OWNER, ...)."""

    code = "CONFLICT"


class AuthenticationFailed(StudioError):
    """An email and password that match no account (INVALID_CREDENTIALS); which was
    wrong is never said."""

    code = "INVALID_CREDENTIALS"


class ValidationFailed(StudioError):
    """Several input problems found at once, so a client can fix them in one go."""

    code = "INVALID_INPUT"

    def __init__(self, errors: Sequence[StudioError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self._errors = list(errors)

    @property
    def errors(self) -> list[StudioError]:
        """The failures found, in the order they were found (a copy)."""
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
