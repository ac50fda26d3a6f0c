"""The environment of a `studio` child process (benchmarks and end-to-end tests).

A child must read only the settings it is given: whatever this process's
environment sets for Storyboard Studio is dropped, in every spelling, since
settings are read case-insensitively.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from api.settings import Settings

# Every request limit off: tests and benchmarks send requests far faster than people
# do, and measure the server, not its limits. Only the tests of limits set them.
UNLIMITED = {
    "RATE_LIMIT_GRAPHQL": "",
    "RATE_LIMIT_MEDIA": "",
    "RATE_LIMIT_SIGN_UP": "",
    "MAX_SUBSCRIPTIONS_PER_CONNECTION": "100000",
    "MAX_SUBSCRIPTIONS_PER_USER": "100000",
    # The realtime bench opens 50 WebSockets at once per receiver, all from 127.0.0.1.
    "MAX_UNSIGNED_WEBSOCKETS_PER_ADDRESS": "100000",
    "LOGIN_FREE_FAILURES": "100000",
    "LOGIN_ADDRESS_FREE_FAILURES": "100000",
    "LOGIN_ACCOUNT_FREE_FAILURES": "100000",
}


def studio_env(base: Mapping[str, str] | None = None, /, **settings: str) -> dict[str, str]:
    """`base` (default: this process's environment) without any studio setting, plus `settings`.

    Pass e.g. `DATABASE_URL=...` to set one. Limits are off (`UNLIMITED`) unless
    `settings` sets them.
    """
    names = {name.upper() for name in Settings.model_fields}
    env = {
        key: value
        for key, value in (os.environ if base is None else base).items()
        if key.upper() not in names
    }
    env.update(UNLIMITED)
    env.update(settings)
    return env
