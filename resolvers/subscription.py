"""The root Subscription: live feeds of a project, a team's library or a team, each built
on `services.realtime.feed.follow_stream`.

Every feed subscribes to the bus before it reads anything, sends the current
state first, then each change in order. Data is read fresh for every message
(the context's loaders are replaced before each one), never from a cache kept
on the connection.
"""

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Annotated, TypeVar, cast

import strawberry
from graphql import GraphQLError

from schema import nodes
from schema.compiled import (
    NOT_COMPILED,
    Finished,
    animation_event_read,
    iteration_event_read,
)
from schema.context import Info, NotAuthenticated
from schema.events import (
    AnimationStatusEvent,
    IterationStatusEvent,
    ProjectEvent,
    decode_cursor,
    encode_cursor,
)
from schema.library_events import LibraryEvent
from schema.library_events import decode_cursor as decode_library_cursor
from schema.storyboard import ImageIteration, ProjectProgress, Shot, ShotImage, StoryboardSelection
from schema.team_events import TeamEvent
from schema.team_events import decode_cursor as decode_team_cursor
from services.accounts import accounts
from services.errors import NotFound, StudioError
from services.library.tables import AssetRow, AssetShareRow
from services.realtime import events, feed, library_events, team_events

_AFTER = "A cursor from an earlier message: replay every event after it first, then go on live."


def _error(error: StudioError) -> GraphQLError:
    return GraphQLError(error.message, extensions={"code": error.code})


E = TypeVar("E", bound=feed.Event)


async def _feed(
    info: Info, project_id: int, team_id: int, after: str | None, *, state_first: bool = False
) -> AsyncGenerator[events.ProjectEvent, None]:
    """The project's events for this subscriber, ending (with NOT_FOUND) if access goes
    (`_follow` of its `ProjectStream`)."""
    start: int | None = None
    if after is not None:
        start = decode_cursor(after, project_id)
        if start is None:
            raise _bad_cursor("project's events")
    async with aclosing(
        _follow(info, feed.ProjectStream(project_id), team_id, start, state_first=state_first)
    ) as stream:
        async for event in stream:
            yield event


def _bad_cursor(of: str) -> GraphQLError:
    return GraphQLError(
        f"That `after` cursor is not one of this {of}.", extensions={"code": "INVALID_CURSOR"}
    )


async def _follow(
    info: Info,
    followed: feed.Stream[E],
    team_id: int,
    start: int | None,
    *,
    state_first: bool = False,
) -> AsyncGenerator[E, None]:
    """A stream's events for this subscriber, a member of `team_id`, ending (with NOT_FOUND)
    if access goes.

    It ends with TOKEN_INVALID (a socket closes with 4403) at the instant the token
    expires, or as soon as a logout is heard of; see `feed.follow_stream` for the schedule.
    """
    context = info.context
    actor = context.require_actor()
    bus = context.resources.bus
    if bus is None:
        raise GraphQLError(
            "Subscriptions are not available on this server.",
            extensions={"code": "SUBSCRIPTIONS_UNAVAILABLE"},
        )
    token = context.token

    async def still_allowed() -> feed.Allowed:
        """The token and the team membership as they are now; allowed until the token expires."""
        if token is None:
            return False
        async with context.db.session() as session:
            current = await accounts.authenticate(session, token)
        if current is None:  # signed out or expired: the whole connection must go (4403)
            raise NotAuthenticated(token_refused=True)
        if not current.can_read(team_id):
            return False
        context.actor = current
        return current.signed_in_until or True

    stream = feed.follow_stream(
        bus,
        context.db.session,
        followed,
        after=start,
        user_id=actor.user_id,
        still_allowed=still_allowed,
        allowed_until=actor.signed_in_until,  # the feed ends at the token's expiry, not later
        snapshot_on_resume=state_first,
        sharing=context.sharing,  # a feed shared with like subscribers (api/fanout.py)
    )
    # Closed with this generator: left to the garbage collector, a feed closed while
    # it waits at `yield` would stay subscribed (and keep receiving) until a
    # collection finds it.
    async with aclosing(stream):
        try:
            async for event in stream:
                context.refresh()  # fresh loaders: this message reads the database as it is now
                yield event
        except StudioError as error:  # AccessLost is a NotFound: it is gone for them
            raise _error(error) from error


async def _team_of(info: Info, project_id: int, what: str = "project") -> int:
    """The project's team, if the viewer may see the project."""
    project = await nodes.visible_project(info, project_id)
    if project is None:
        raise _error(NotFound(what))
    return project.row.team_id


async def _storyboard(
    info: Info, project_id: int
) -> tuple[list[StoryboardSelection], ProjectProgress]:
    loaders = info.context.loaders
    rows = await loaders.storyboard_of_project.load(project_id)
    progress = await loaders.progress_of_project.load(project_id)
    return [StoryboardSelection.from_row(r) for r in rows], ProjectProgress.from_progress(progress)


@strawberry.type(
    description="Live feeds. Over WebSocket (graphql-transport-ws), sign in by "
    'sending {"authorization": "Bearer <token>"} as the connection_init payload.'
)
class Subscription:
    @strawberry.subscription(
        description="Every change in the project, in order, each with a cursor. Without `after` "
        "the first message is a SNAPSHOT marking where the feed starts; with it, the events "
        "after that cursor are replayed first, so a client that reconnects misses nothing."
    )
    async def project_events(
        self,
        info: Info,
        project_id: Annotated[strawberry.ID, strawberry.argument(description="The project.")],
        after: Annotated[str | None, strawberry.argument(description=_AFTER)] = None,
    ) -> AsyncGenerator[ProjectEvent, None]:
        info.context.require_actor()
        _, pk = nodes.parse_or_reject(project_id, "Project")
        team_id = await _team_of(info, pk)
        async with aclosing(_feed(info, pk, team_id, after)) as feed:
            async for event in feed:
                yield ProjectEvent.from_event(event)

    @strawberry.subscription(
        description="First the shot's iterations as they are (also when resuming with `after`), "
        "then a message per change of any image of the shot, in order. Ends when the shot is "
        "deleted."
    )
    async def iteration_status(
        self,
        info: Info,
        shot_id: Annotated[strawberry.ID, strawberry.argument(description="The shot.")],
        after: Annotated[str | None, strawberry.argument(description=_AFTER)] = None,
    ) -> AsyncGenerator[IterationStatusEvent, None]:
        info.context.require_actor()
        _, shot_pk = nodes.parse_or_reject(shot_id, "Shot")
        shot_row = await info.context.loaders.shot.load(shot_pk)
        if shot_row is None:
            raise _error(NotFound("shot"))
        pk = shot_row.project_id
        team_id = await _team_of(info, pk, "shot")
        scene_id = shot_row.scene_id
        async with aclosing(_feed(info, pk, team_id, after, state_first=True)) as feed:
            async for event in feed:
                if _ends_shot(event, shot_pk, scene_id):
                    return
                image_id: int | None = None
                if event.kind != events.SNAPSHOT:
                    if event.node_type != "ShotImage" or event.shot_id != shot_pk:
                        continue
                    if event.change != events.DELETED:
                        image_id = event.node_id
                cursor = encode_cursor(pk, event.sequence)
                compiled = await iteration_event_read(
                    info, shot_pk, cursor=cursor, image_id=image_id
                )
                # A Finished value: the executor takes it as the completed message. None
                # (the shot gone): the field-by-field read below says what to do.
                if compiled is not NOT_COMPILED and cast(Finished, compiled).value is not None:
                    yield cast(IterationStatusEvent, compiled)
                    continue
                image = await ShotImage.load(info, image_id)
                shot_row = await info.context.loaders.shot.load(shot_pk)
                if shot_row is None:
                    return
                yield IterationStatusEvent(
                    cursor=cursor,
                    shot=Shot.from_row(shot_row),
                    iterations=await ImageIteration.of_shot(info, shot_pk),
                    image=image,
                )

    @strawberry.subscription(
        description="First the project's storyboard and progress as they are (also when "
        "resuming with `after`), then a message per change of any selection or its animation, "
        "in order."
    )
    async def animation_status(
        self,
        info: Info,
        project_id: Annotated[strawberry.ID, strawberry.argument(description="The project.")],
        after: Annotated[str | None, strawberry.argument(description=_AFTER)] = None,
    ) -> AsyncGenerator[AnimationStatusEvent, None]:
        info.context.require_actor()
        _, pk = nodes.parse_or_reject(project_id, "Project")
        team_id = await _team_of(info, pk)
        async with aclosing(_feed(info, pk, team_id, after, state_first=True)) as feed:
            async for event in feed:
                if event.kind == events.PROJECT_DELETED:
                    return
                selection_id: int | None = None
                if event.kind != events.SNAPSHOT:
                    if event.node_type != "StoryboardSelection":
                        continue
                    if event.change != events.DELETED:
                        selection_id = event.node_id
                cursor = encode_cursor(pk, event.sequence)
                compiled = await animation_event_read(
                    info, pk, cursor=cursor, selection_id=selection_id
                )
                # A Finished value: the executor takes it as the completed message. None
                # (the project gone): read field by field below, as before.
                if compiled is not NOT_COMPILED and cast(Finished, compiled).value is not None:
                    yield cast(AnimationStatusEvent, compiled)
                    continue
                selection: StoryboardSelection | None = None
                if selection_id is not None:
                    row = await info.context.loaders.selection.load(selection_id)
                    selection = StoryboardSelection.from_row(row) if row else None
                selections, progress = await _storyboard(info, pk)
                yield AnimationStatusEvent(
                    cursor=cursor,
                    selections=selections,
                    selection=selection,
                    progress=progress,
                )

    # --- library events ---
    @strawberry.subscription(
        description="Every change in a team's library the viewer may see, in order, each with "
        "a cursor: assets created, updated, deleted and shared, so a library grid stays "
        "current. Without `after` the first message is a SNAPSHOT marking where the feed "
        "starts; with it, the events after that cursor are replayed first. Only for members "
        "of the team (assets of other teams shared with the viewer are not on it); it ends "
        "with NOT_FOUND when they leave the team."
    )
    async def library_events(
        self,
        info: Info,
        team_id: Annotated[strawberry.ID, strawberry.argument(description="The team.")],
        after: Annotated[str | None, strawberry.argument(description=_AFTER)] = None,
    ) -> AsyncGenerator[LibraryEvent, None]:
        actor = info.context.require_actor()
        _, pk = nodes.parse_or_reject(team_id, "Team")
        if not actor.can_read(pk):
            raise _error(NotFound("team"))
        start: int | None = None
        if after is not None:
            start = decode_library_cursor(after, pk)
            if start is None:
                raise _bad_cursor("team's library events")
        stream = library_events.LibraryStream(pk)
        async with aclosing(_follow(info, stream, pk, start)) as followed:
            async for event in followed:
                if await _reaches(info, event):
                    yield LibraryEvent.from_event(event)

    # --- team events ---
    @strawberry.subscription(
        description="Every change a team's projects list and team page show, in order, each "
        "with a cursor: projects created, updated (title, status, progress) and deleted, "
        "members joining, leaving or changing role, and (to owners and admins) invitations. "
        "Without `after` the first message is a SNAPSHOT marking where the feed starts; with "
        "it, the events after that cursor are replayed first. Only for members of the team; "
        "it ends with NOT_FOUND the moment they leave it or are removed."
    )
    async def team_events(
        self,
        info: Info,
        team_id: Annotated[strawberry.ID, strawberry.argument(description="The team.")],
        after: Annotated[str | None, strawberry.argument(description=_AFTER)] = None,
    ) -> AsyncGenerator[TeamEvent, None]:
        actor = info.context.require_actor()
        _, pk = nodes.parse_or_reject(team_id, "Team")
        if not actor.can_read(pk):
            raise _error(NotFound("team"))
        start: int | None = None
        if after is not None:
            start = decode_team_cursor(after, pk)
            if start is None:
                raise _bad_cursor("team's events")
        stream = team_events.TeamStream(pk)
        async with aclosing(_follow(info, stream, pk, start)) as followed:
            async for event in followed:
                # The role as last checked: `_follow` checks again on every access notice.
                if team_events.reaches(info.context.require_actor(), event):
                    yield TeamEvent.from_event(event)


async def _reaches(info: Info, event: library_events.LibraryEvent) -> bool:
    """Whether the viewer (as last checked) receives `event`, with the rows as they are now."""
    actor = info.context.require_actor()
    loaders = info.context.loaders
    asset: AssetRow | None = None
    share: AssetShareRow | None = None
    if event.kind != events.SNAPSHOT:
        asset = await loaders.asset.load(event.asset_id)
        if asset is not None:
            share = await loaders.asset_share.load((event.asset_id, actor.user_id))
    return library_events.reaches(actor, event, asset, share)


def _ends_shot(event: events.ProjectEvent, shot_id: int, scene_id: int) -> bool:
    if event.kind == events.PROJECT_DELETED:
        return True
    if event.change != events.DELETED:
        return False
    return (event.node_type, event.node_id) in (("Shot", shot_id), ("Scene", scene_id))
