"""Tags of assets and collections: one rule for both.

A list holds at most MAX_TAGS (30) tags; each is 1..TAG_MAX (50) characters after
trimming, stored lower-cased in Unicode normal form C (so "café" typed either way is
one tag), without repeats (the first kept, in the order given).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from services.validation import Checks

MAX_TAGS = 30
"""Tags an asset or a collection may have, and may be given at once."""
TAG_MAX = 50
"""Characters in one tag, after trimming."""


def clean_tags(
    checks: Checks, tags: Sequence[str] | None, *, field: Sequence[str] = ("tags",)
) -> list[str]:
    """The tags as stored: each trimmed, in normal form C and lower-cased, duplicates
    dropped (the first kept, in the given order). None is no tags.

    Records TOO_MANY_TAGS at `field` for more than MAX_TAGS (30) given (and then looks at
    none of them), and for each bad tag BLANK, TOO_LONG (over TAG_MAX, 50, characters)
    or INVALID_CHARACTERS at `field` + its index. Raises nothing.
    """
    if tags is None:
        return []
    if len(tags) > MAX_TAGS:
        checks.fail(
            "TOO_MANY_TAGS", f"At most {MAX_TAGS} tags are allowed; got {len(tags)}.", tuple(field)
        )
        return []
    cleaned: list[str] = []
    for index, tag in enumerate(tags):
        text = checks.text(tag, field=(*field, str(index)), max_length=TAG_MAX, label="tag")
        lowered = unicodedata.normalize("NFC", text).lower()
        if lowered and lowered not in cleaned:
            cleaned.append(lowered)
    return cleaned
