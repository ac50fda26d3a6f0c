"""The words a prompt gained and lost against its parent's: a lineage step's prompt delta.

    prompt_delta("A lighthouse at dusk", "the same lighthouse in a storm, at dusk")
    # {"added": ["the", "same", "in", "a", "storm"], "removed": []}

A word is a run of letters, digits, apostrophes and hyphens (Unicode-aware),
compared lower-cased; punctuation and spacing never count as a change. Each list
holds every word once, in the order it first appears in its prompt.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")  # it's, close-up


def prompt_words(prompt: str | None) -> list[str]:
    """The distinct lower-cased words of `prompt`, in order of first appearance ([] for None)."""
    seen: dict[str, None] = {}
    for match in _WORD.finditer(prompt or ""):
        seen.setdefault(match.group().lower(), None)
    return list(seen)


def prompt_delta(old: str | None, new: str | None) -> dict[str, list[str]]:
    """`{"added": [...], "removed": [...]}`: the words of `new` not in `old`, and of
    `old` not in `new` (see the module for what a word is). None counts as empty."""
    before, after = prompt_words(old), prompt_words(new)
    had, has = set(before), set(after)
    return {
        "added": [word for word in after if word not in had],
        "removed": [word for word in before if word not in has],
    }
