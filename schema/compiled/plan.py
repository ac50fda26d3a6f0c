"""What a client asked for below a compiled root, as a tree of plain field picks.

`Walk.collect` walks a field's selection set as graphql-core would collect it
(fragment spreads, inline fragments, `@skip`/`@include`, aliases, fields asked for
twice merged under their response key, in the order of first appearance) against
the catalogue of what `schema.compiled.sql` can compile (`COMPILABLE`). It raises
NotCompilable whenever the selection holds anything else (another field, an
argument, an unknown directive, `@defer`): the caller then resolves the field as
usual, field by field, so a compiled read never changes what a query may ask.

The selection is already validated when a resolver sees it (types, arguments,
fragment cycles, same-named fields), so only what validation lets through is
handled here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    BooleanValueNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionSetNode,
    VariableNode,
)

# The object types a compiled read can build, and what each field of theirs is: its
# sub-selection's type for an object field, else None (a leaf). Interfaces a type
# implements may stand in a fragment's type condition.
COMPILABLE: dict[str, dict[str, str | None]] = {
    "Project": {
        "id": None,
        "title": None,
        "prompt": None,
        "promptPlannerData": None,
        "workflowVersion": None,
        "status": None,
        "progress": "ProjectProgress",
        "scenes": "Scene",
        "team": "Team",
        "owner": "User",
        "createdAt": None,
        "updatedAt": None,
    },
    "Team": {"id": None, "name": None, "isPersonal": None, "createdAt": None},
    "User": {"id": None, "name": None, "email": None, "createdAt": None},
    "ProjectProgress": {
        "totalScenes": None,
        "totalShots": None,
        "shotsWithSelections": None,
        "shotsWithAnimations": None,
        "selectionProgress": None,
        "animationProgress": None,
        "isSelectionComplete": None,
        "isAnimationComplete": None,
    },
    "Scene": {
        "id": None,
        "sceneNumber": None,
        "title": None,
        "description": None,
        "shots": "Shot",
        "createdAt": None,
        "updatedAt": None,
    },
    "Shot": {
        "id": None,
        "shotNumber": None,
        "description": None,
        "initialPrompt": None,
        "latestIterationNumber": None,
        "selectedImage": "ShotImage",
        "iterations": "ImageIteration",
        "createdAt": None,
        "updatedAt": None,
    },
    "ImageIteration": {
        "iterationNumber": None,
        "prompt": None,
        "status": None,
        "images": "ShotImage",
        "parentImage": "ShotImage",
    },
    "ShotImage": {
        "id": None,
        "iterationNumber": None,
        "variantNumber": None,
        "status": None,
        "iterationPrompt": None,
        "isFavorite": None,
        "predictionId": None,
        "model": None,
        "error": None,
        "imageUrl": None,
        "createdAt": None,
        "updatedAt": None,
        "thumbnailUrl": None,
        "parentImage": "ShotImage",
    },
    "StoryboardSelection": {
        "id": None,
        "animationStatus": None,
        "model": None,
        "predictionId": None,
        "error": None,
        "animatedVideoUrl": None,
        "shot": "Shot",
        "selectedImage": "ShotImage",
        "createdAt": None,
        "updatedAt": None,
    },
    # The messages of the `iterationStatus` and `animationStatus` subscriptions: their
    # shot's and their project's row is the root.
    "IterationStatusEvent": {
        "cursor": None,
        "shot": "Shot",
        "iterations": "ImageIteration",
        "image": "ShotImage",
    },
    "AnimationStatusEvent": {
        "cursor": None,
        "selections": "StoryboardSelection",
        "selection": "StoryboardSelection",
        "progress": "ProjectProgress",
    },
}
TYPENAME = "__typename"


@dataclass(frozen=True)
class Pick:
    """One response key of an object: `field` of its type, under `key` (the alias or the
    field's name), with the merged picks of its sub-selection (empty for a leaf)."""

    key: str
    field: str
    children: tuple[Pick, ...] = ()


class NotCompilable(Exception):
    """The selection holds something a compiled read does not build."""


@dataclass
class Walk:
    """One walk over a document's selections: `fragments` and `variables` are the
    document's; `read` gathers the names of the variables whose values decided what
    was collected (for the caller's plan cache)."""

    fragments: Mapping[str, FragmentDefinitionNode]
    variables: Mapping[str, Any]
    read: set[str]
    # What may be picked, by type (see COMPILABLE); a type with an `id` is a Node.
    catalogue: Mapping[str, Mapping[str, str | None]] = field(default_factory=lambda: COMPILABLE)

    def included(self, node: FieldNode | FragmentSpreadNode | InlineFragmentNode) -> bool:
        keep = True
        for directive in node.directives or ():
            name = directive.name.value
            if name not in ("skip", "include"):
                raise NotCompilable(f"@{name}")
            (argument,) = directive.arguments or ()
            value = argument.value
            if isinstance(value, VariableNode):
                self.read.add(value.name.value)
                flag = self.variables.get(value.name.value)
                if not isinstance(flag, bool):
                    # Null, from a nullable variable with a default sent as null:
                    # graphql-core refuses it with an error when it collects these
                    # fields, so they are left to it.
                    raise NotCompilable("null directive argument")
            elif isinstance(value, BooleanValueNode):
                flag = value.value
            else:  # pragma: no cover - validation allows only Boolean! here
                raise NotCompilable("directive argument")
            if (name == "skip") == bool(flag):
                keep = False
        return keep

    def applies(self, type_condition: str | None, type_name: str) -> bool:
        return (
            type_condition is None
            or type_condition == type_name
            or (type_condition == "Node" and "id" in self.catalogue.get(type_name, ()))
        )

    def fields(
        self, type_name: str, field_nodes: Iterable[FieldNode]
    ) -> dict[str, list[FieldNode]]:
        """The fields asked for below `field_nodes` (the nodes of one field of type
        `type_name`, which may be outside the catalogue), by response key in the order
        of first appearance, as graphql-core collects them. Raises NotCompilable."""
        fields: dict[str, list[FieldNode]] = {}
        for node in field_nodes:
            if node.selection_set:
                self._gather(type_name, node.selection_set, fields, set())
        return fields

    def collect(
        self, type_name: str, selection_sets: Iterable[SelectionSetNode]
    ) -> tuple[Pick, ...]:
        fields: dict[str, list[FieldNode]] = {}
        for selection_set in selection_sets:
            self._gather(type_name, selection_set, fields, set())
        catalogue = self.catalogue[type_name]
        picks = []
        for key, nodes in fields.items():
            name = nodes[0].name.value
            if name == TYPENAME:
                picks.append(Pick(key, name))
                continue
            if name not in catalogue or any(node.arguments for node in nodes):
                raise NotCompilable(f"{type_name}.{name}")
            child_type = catalogue[name]
            children: tuple[Pick, ...] = ()
            if child_type is not None:
                children = self.collect(
                    child_type, [n.selection_set for n in nodes if n.selection_set]
                )
            picks.append(Pick(key, name, children))
        return tuple(picks)

    def _gather(
        self,
        type_name: str,
        selection_set: SelectionSetNode,
        fields: dict[str, list[FieldNode]],
        visited: set[str],
    ) -> None:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                if self.included(selection):
                    key = selection.alias.value if selection.alias else selection.name.value
                    fields.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if self.included(selection) and self.applies(
                    condition.name.value if condition else None, type_name
                ):
                    self._gather(type_name, selection.selection_set, fields, visited)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if getattr(selection, "arguments", None):
                    raise NotCompilable("fragment arguments")
                # Directives first, as graphql-core reads them (and refuses a null) even
                # on a spread of a fragment already spread.
                if not self.included(selection) or name in visited:
                    continue
                visited.add(name)
                fragment = self.fragments.get(name)
                if fragment is None:  # pragma: no cover - validation refuses unknown fragments
                    raise NotCompilable(name)
                if self.applies(fragment.type_condition.name.value, type_name):
                    self._gather(type_name, fragment.selection_set, fields, visited)
            else:  # pragma: no cover - the grammar has no other selection
                raise NotCompilable(type(selection).__name__)
