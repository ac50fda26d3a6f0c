"""The Relay `Node` interface."""

from __future__ import annotations

import strawberry


@strawberry.interface(description="An object with an opaque global ID, fetchable with `node(id:)`.")
class Node:
    id: strawberry.ID = strawberry.field(description="The object's opaque global ID.")
