"""The resources the lifespan opens, typed, for routes and the GraphQL view."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from services.database import Database


@dataclass
class AppState:
    db: Database
    public_url: str
    secret_key: str


def app_state(connection: HTTPConnection) -> AppState:
    state: AppState = connection.app.state.studio
    return state
