"""What every event-bus backend shares: its errors and the resync marker."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sized
from typing import Any

from services.backoff import Backoff

Message = dict[str, Any]

# What a backend returns after it reconnects: messages may have been lost meanwhile,
# so every subscriber gets {"resync": true} and catches up from its own records.
RESYNC = "\x00resync"


class BusError(Exception):
    """The bus cannot publish or deliver right now."""


class SubscriberTooSlow(BusError):
    """This subscriber fell too far behind and was cut off; resume from the last cursor."""


async def listen_again(
    listen: Callable[[], Awaitable[None]],
    backoff: Backoff,
    logger: logging.Logger,
    *,
    server: str,
    channels: Sized,
) -> None:
    """Call `listen` until it succeeds, waiting `backoff` before each try; log each failure.

    For a backend whose listening connection dropped: `listen` opens a new one and
    subscribes every channel again. `server` names it in the log ("Redis").
    """
    while True:
        await backoff.wait()
        try:
            await listen()
        except Exception as error:
            logger.warning("event bus: %s still unreachable (%s)", server, error)
            continue
        backoff.reset()
        logger.warning(
            "event bus: reconnected to %s; %d channels re-subscribed", server, len(channels)
        )
        return
