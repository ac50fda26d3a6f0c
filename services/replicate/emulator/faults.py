"""Fault injection: which settings may change at run time, and the dice that apply them.

`apply_settings` is what `POST /_emulator/faults` calls: it checks a JSON object of
settings and applies all of them or none. `FaultDice` decides, one roll at a time,
whether a fault happens (and picks the seeds models choose for themselves); seeded
from `EmulatorConfig.seed`, a run is reproducible.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, MutableSequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

from services.replicate.emulator.config import EmulatorConfig
from services.replicate.emulator.specs import InvalidField

_Item = TypeVar("_Item")


@dataclass(frozen=True)
class _Setting:
    kind: Literal["rate", "bool", "count", "seconds"]


# The settings a running emulator accepts changes to; identity (secret, token, URL)
# is fixed for the emulator's life because clients hold on to it.
ADJUSTABLE: Final[Mapping[str, _Setting]] = {
    "failure_rate": _Setting("rate"),
    "throttle_rate": _Setting("rate"),
    "webhook_duplicate_rate": _Setting("rate"),
    "webhook_drop_rate": _Setting("rate"),
    "webhook_shuffle": _Setting("bool"),
    "down": _Setting("bool"),
    "latency_ms": _Setting("count"),
    "create_response_delay_ms": _Setting("count"),
    "create_limit_per_minute": _Setting("count"),
    "other_limit_per_minute": _Setting("count"),
    "webhook_max_attempts": _Setting("count"),
    "page_size": _Setting("count"),
    "output_ttl_seconds": _Setting("seconds"),
    "webhook_retry_seconds": _Setting("seconds"),
}

MAX_COUNT: Final = 10**9
"""The largest count (milliseconds, limits, attempts) a setting takes: 11 days in ms."""
MAX_SECONDS: Final = 10**7
"""The longest time in seconds a setting takes (about 115 days)."""

FAULT_DEFAULTS: Final[Mapping[str, Any]] = {
    "failure_rate": 0.0,
    "throttle_rate": 0.0,
    "webhook_duplicate_rate": 0.0,
    "webhook_drop_rate": 0.0,
    "webhook_shuffle": False,
    "down": False,
    "create_response_delay_ms": 0,
}


def settings_snapshot(config: EmulatorConfig) -> dict[str, Any]:
    """The current value of every adjustable setting."""
    return {name: getattr(config, name) for name in ADJUSTABLE}


def _check(name: str, value: object) -> tuple[Any, InvalidField | None]:
    setting = ADJUSTABLE[name]
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if setting.kind == "bool":
        if isinstance(value, bool):
            return value, None
        return None, InvalidField("invalid_type", name, "Invalid type. Expected: boolean")
    if not is_number:
        return None, InvalidField("invalid_type", name, "Invalid type. Expected: number")
    # Range first, on the number as given: float() of a 400-digit int overflows, and a
    # finite 1e300 would be a latency no sleep can take.
    if isinstance(value, float) and not math.isfinite(value):
        return None, InvalidField("invalid_type", name, "Invalid type. Expected: number")
    if setting.kind == "rate":
        if not 0 <= value <= 1:  # type: ignore[operator]
            return None, InvalidField("number_range", name, "Must be between 0 and 1")
        return float(value), None  # type: ignore[arg-type]
    high = MAX_COUNT if setting.kind == "count" else MAX_SECONDS
    if value < 0:  # type: ignore[operator]
        return None, InvalidField("number_gte", name, "Must be greater than or equal to 0")
    if value > high:  # type: ignore[operator]
        return None, InvalidField("number_lte", name, f"Must be at most {high}")
    number = float(value)  # type: ignore[arg-type]
    if setting.kind == "count":
        minimum = 1 if name in ("webhook_max_attempts", "page_size") else 0
        if not number.is_integer() or number < minimum:
            return None, InvalidField("number_gte", name, f"Must be an integer >= {minimum}")
        return int(number), None
    if number < 0:
        return None, InvalidField("number_gte", name, "Must be greater than or equal to 0")
    return number, None


def apply_settings(config: EmulatorConfig, payload: object) -> list[InvalidField]:
    """Apply a JSON object of settings to `config`: all of them, or none if any is invalid.

    Returns the problems found (an unknown or fixed setting, a wrong type, a
    value out of range), each as a 422's `invalid_fields` entry; [] when applied.
    Rates are 0..1, counts whole numbers up to MAX_COUNT, seconds up to MAX_SECONDS.
    """
    if not isinstance(payload, dict):
        return [InvalidField("invalid_type", "(root)", "Expected a JSON object of settings")]
    problems: list[InvalidField] = []
    accepted: dict[str, Any] = {}
    for name, value in payload.items():
        if name not in ADJUSTABLE:
            problems.append(
                InvalidField(
                    "additional_property_not_allowed", name, f"{name} cannot be changed at run time"
                )
            )
            continue
        checked, problem = _check(name, value)
        if problem is not None:
            problems.append(problem)
        else:
            accepted[name] = checked
    if not problems:
        for name, value in accepted.items():
            setattr(config, name, value)
    return problems


MODEL_SEEDS: Final = 2**16
"""A model given no seed picks one below this (two random bytes)."""


class FaultDice:
    """The emulator's one source of chance, seeded from `EmulatorConfig.seed` when given.

    Example: `FaultDice(seed=7).roll(0.5)` gives the same answer on every run.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)  # noqa: S311 - simulation, not security

    def roll(self, rate: float) -> bool:
        """True with probability `rate` (never for 0, always for 1)."""
        if rate <= 0.0:
            return False
        if rate >= 1.0:
            return True
        return self._random.random() < rate

    def model_seed(self) -> int:
        """A seed in 0..MODEL_SEEDS-1, for a prediction whose input names none."""
        return self._random.randrange(MODEL_SEEDS)

    def derange(self, items: MutableSequence[_Item]) -> None:
        """Shuffle `items` in place into an order that differs from the given one (if it can)."""
        if len(items) < 2:
            return
        original = list(items)
        self._random.shuffle(items)
        if list(items) == original:
            # A shuffle may return the input unchanged; rotating by one never does
            # for two or more items, so "out of order" is always true.
            items[:] = original[1:] + original[:1]
