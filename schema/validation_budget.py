"""A bound on the work of validating a document, checked before graphql-core validates it.

graphql-core's OverlappingFieldsCanBeMerged rule compares every pair of fields
that share a response name in one selection set (fields of inline fragments
and of spread fragments included), and for each such pair compares their
sub-selections the same way. Its cost is therefore quadratic in the number of
same-named fields: measured on this schema, `{ viewer{id} x990 }` (under the
depth, alias and token limits) took 1.3-3.5 s, `{ viewer{id} x200 }` 0.5 s,
a tree of `project{scenes{project{...}}}` two copies wide and seven deep
(256 fields) 0.17 s, 247 one-field fragments spread once each 1.7 s. Every
other rule is linear in the document.

`ValidationBudget` walks the parsed document the way that rule does, counting
one unit for each field it collects (fragments expanded where spread) and one
for each pair of same-named fields it would compare, and stops counting at
`max_work`. A document over the budget is refused with one top-level error,
code `TOO_COMPLEX`, and is never validated; the walk itself costs at most
`max_work` steps. Fragments are expanded without graphql-core's memoisation,
so the count errs on the safe side.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import ValidationCache

TOO_COMPLEX = "TOO_COMPLEX"


class _OverBudget(Exception):
    pass


class _Counter:
    """Counts the overlap rule's work over one document, raising `_OverBudget` past `limit`."""

    def __init__(self, document: DocumentNode, *, limit: int, max_nesting: int) -> None:
        self.limit = limit
        self.max_nesting = max_nesting
        self.work = 0
        self.fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }

    def spend(self, units: int) -> None:
        self.work += units
        if self.work > self.limit:
            raise _OverBudget

    def collect(self, selection_set: SelectionSetNode) -> dict[str, list[FieldNode]]:
        """Fields by response name, inline and spread fragments flattened in (cycles cut)."""
        fields: dict[str, list[FieldNode]] = {}
        # (selection set, fragment names on the way to it): iterative, so no spread
        # chain can overflow the stack; a fragment already on the way is a cycle,
        # reported by NoFragmentCyclesRule, and not entered again.
        stack: list[tuple[SelectionSetNode, frozenset[str]]] = [(selection_set, frozenset())]
        while stack:
            current, seen = stack.pop()
            for selection in current.selections:
                if isinstance(selection, FieldNode):
                    self.spend(1)
                    name = selection.alias.value if selection.alias else selection.name.value
                    fields.setdefault(name, []).append(selection)
                elif isinstance(selection, InlineFragmentNode):
                    stack.append((selection.selection_set, seen))
                elif isinstance(selection, FragmentSpreadNode):
                    spread = selection.name.value
                    fragment = self.fragments.get(spread)
                    if fragment is not None and spread not in seen:
                        self.spend(1)
                        stack.append((fragment.selection_set, seen | {spread}))
        return fields

    def within(self, selection_set: SelectionSetNode) -> None:
        """The rule's check of one selection set against itself."""
        for same in self.collect(selection_set).values():
            for index, first in enumerate(same):
                for second in same[index + 1 :]:
                    self.between(first, second, 1)

    def between(self, first: FieldNode, second: FieldNode, nesting: int) -> None:
        """One pair of same-named fields, and recursively their sub-selections."""
        self.spend(1)
        if first.selection_set is None or second.selection_set is None:
            return
        if nesting > self.max_nesting:
            raise _OverBudget
        theirs = self.collect(second.selection_set)
        for name, mine in self.collect(first.selection_set).items():
            for left in mine:
                for right in theirs.get(name, ()):
                    self.between(left, right, nesting + 1)


def _selection_sets(document: DocumentNode) -> Iterator[SelectionSetNode]:
    """Every selection set written in the document (each once, as the rule visits them)."""
    stack: list[SelectionSetNode] = [
        definition.selection_set
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode)
    ]
    while stack:
        selection_set = stack.pop()
        yield selection_set
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
                stack.append(selection.selection_set)


def validation_work(document: DocumentNode, *, limit: int, max_nesting: int = 64) -> int | None:
    """The overlap rule's work units for `document`, or None when over `limit`.

    Pairs nested deeper than `max_nesting` count as over (the depth limit
    refuses such documents anyway; this keeps the walk off the stack's limit).
    """
    counter = _Counter(document, limit=limit, max_nesting=max_nesting)
    try:
        for selection_set in _selection_sets(document):
            counter.spend(1)
            counter.within(selection_set)
    except _OverBudget:
        return None
    return counter.work


def too_complex(limit: int) -> GraphQLError:
    """The top-level error for a document over the budget."""
    return GraphQLError(
        f"The document is too complex to check: it repeats the same fields too often "
        f"(over {limit} units of work). Ask for each field once per selection set.",
        extensions={"code": TOO_COMPLEX},
    )


class ValidationBudget(ValidationCache):
    """Strawberry's ValidationCache, refusing documents over `max_work` before validating them.

    Takes ValidationCache's place in the extension list (that extension
    validates in its own `on_validate`, so a check placed anywhere else would
    run after the work it should prevent).

    Example: `strawberry.Schema(Query, extensions=[lambda: ValidationBudget(max_work=2000)])`.
    """

    def __init__(self, *, max_work: int, maxsize: int | None = 512) -> None:
        super().__init__(maxsize=maxsize)
        self.max_work = max_work

    def on_validate(self) -> Iterator[None]:
        document = self.execution_context.graphql_document
        if document is not None and validation_work(document, limit=self.max_work) is None:
            self.execution_context.pre_execution_errors = [too_complex(self.max_work)]
            yield
            return
        yield from super().on_validate()
