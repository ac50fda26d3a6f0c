"""Strawberry's ParserCache, leaving a document that does not parse to Strawberry.

ParserCache parses in its `on_parse` hook, which runs outside the `try` with
which Strawberry turns a syntax error into an error result. For a query that
only changes the traceback, but for a subscription's stream (graphql-transport-ws,
graphql-ws, Server-Sent Events) the GraphQLSyntaxError escapes the stream: the
client got `complete` with no error, no answer, or a broken response, and the
log a traceback. Here the hook leaves the document unset when it does not
parse; Strawberry then parses it itself, inside its `try`, and answers with the
syntax error (GRAPHQL_PARSE_FAILED, see schema.error_codes) on every transport.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import ParserCache


class StudioParserCache(ParserCache):
    """ParserCache whose hook never raises: see the module."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        try:
            context.graphql_document = self.cached_parse_document(
                context.query, **context.parse_options
            )
        except GraphQLError:
            context.graphql_document = None  # parsed again, and reported, by Strawberry
        yield
