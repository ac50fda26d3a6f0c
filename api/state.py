"""The resources the lifespan opens, typed, for routes and the GraphQL view."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from schema.context import Resources
from services.database import Database
from services.generation.engine import GenerationEngine
from services.media.storage import MediaLinks, Storage
from services.realtime.bus import EventBus


@dataclass
class AppState:
    resources: Resources
    storage: Storage
    public_url: str
    # Where calls to Replicate go: its API, another emulator, or the built-in one.
    replicate_url: str = ""

    @property
    def db(self) -> Database:
        return self.resources.db

    @property
    def bus(self) -> EventBus:
        assert self.resources.bus is not None, "the server always runs a bus"
        return self.resources.bus

    @property
    def media_links(self) -> MediaLinks:
        return self.resources.media

    @property
    def generation_engine(self) -> GenerationEngine:
        assert self.resources.generation_engine is not None, "the server always runs generation"
        return self.resources.generation_engine


def app_state(connection: HTTPConnection) -> AppState:
    state: AppState = connection.app.state.studio
    return state
