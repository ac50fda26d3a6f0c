"""Full-text matching of library assets, per engine (the objects are migration 0012's).

PostgreSQL: `assets.search_vector @@ plainto_tsquery('english', ...)`, ranked by
`ts_rank` (name weighs most, then tags, prompt, description). SQLite: the FTS5 table
`asset_search` (porter stemming), ranked by `bm25` with like weights. Every word must
match, in any form its stem covers ("running" finds "run"); ranks differ by engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Float, column, false, func, literal_column, table
from sqlmodel import col, select

from services.library.tables import AssetRow

MAX_WORDS = 16  # words of search text used
_WORD = re.compile(r"\w+")
# bm25 weights of asset_search's columns (name, description, prompt, tags), like the
# PostgreSQL weights A (name), D (description), C (prompt), B (tags).
_BM25_WEIGHTS = (10.0, 1.0, 2.0, 5.0)


def words(text: str | None) -> list[str]:
    """The words of search text, lower-cased, at most MAX_WORDS of them."""
    return _WORD.findall((text or "").lower())[:MAX_WORDS]


@dataclass(frozen=True)
class TextMatch:
    """The condition that an asset matches search text, and its rank (higher: better)."""

    condition: ColumnElement[bool]
    rank: ColumnElement[float]


def text_match(dialect: str, found: list[str]) -> TextMatch:
    """The full-text match of the words `found` (all of them, stemmed) on `assets`."""
    if not found:
        return TextMatch(false(), literal_column("0.0", Float))
    if dialect == "postgresql":
        vector: ColumnElement[Any] = literal_column("assets.search_vector")
        query = func.plainto_tsquery(literal_column("'english'::regconfig"), " ".join(found))
        return TextMatch(vector.op("@@")(query), func.ts_rank(vector, query, type_=Float))
    # FTS5: each word a quoted string, so no word is read as query syntax; all must match.
    expression = " ".join(f'"{word}"' for word in found)
    fts = table("asset_search", column("rowid"))
    matches = literal_column("asset_search").op("MATCH")(expression)
    hits = select(fts.c.rowid).where(matches)
    # bm25 is only defined inside a query on the FTS table: the rank is a correlated
    # subquery on it, the condition an IN over its matches.
    rank = (
        select(-func.bm25(literal_column("asset_search"), *_BM25_WEIGHTS, type_=Float))
        .select_from(fts)
        .where(matches, fts.c.rowid == col(AssetRow.id))
        .scalar_subquery()
    )
    return TextMatch(col(AssetRow.id).in_(hits), rank)
