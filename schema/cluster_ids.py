"""The opaque IDs of constellation clusters: base64 of "ConstellationCluster:<team>:<key>".

A cluster is not a Node (it has no `node(id)`), but its ID looks like one, so clients
treat all IDs alike. Used by `schema.constellation` and by `Asset.constellationPosition`.
"""

from __future__ import annotations

import base64
import binascii

import strawberry

from schema import ids
from services.errors import InvalidInput

CLUSTER = "ConstellationCluster"


def encode_cluster(team_id: int, key: str) -> strawberry.ID:
    """The opaque ID of a team's cluster."""
    return strawberry.ID(base64.b64encode(f"{CLUSTER}:{team_id}:{key}".encode()).decode())


def decode_cluster(global_id: str, *, field: tuple[str, ...] = ("clusterId",)) -> tuple[int, str]:
    """The (team id, key) of a cluster ID; InvalidInput (INVALID_ID) for anything else."""
    invalid = InvalidInput("That is not a valid cluster ID.", code="INVALID_ID", field=field)
    if len(global_id) > 200:
        raise invalid
    try:
        text = base64.b64decode(global_id, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid from None
    kind, _, rest = text.partition(":")
    team, _, key = rest.partition(":")
    if kind != CLUSTER or not team.isdecimal() or not 0 < len(team) <= 19 or not key:
        raise invalid
    team_id = int(team)
    if not 1 <= team_id <= ids.MAX_PK or len(key) > 64:
        raise invalid
    return team_id, key
