"""The committed SDL matches the code, and every part of the API is described."""

from __future__ import annotations

from pathlib import Path

from graphql import GraphQLEnumType, GraphQLInputObjectType, GraphQLInterfaceType, GraphQLObjectType

from api.schema import schema

SDL = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_committed_schema_matches_the_code() -> None:
    assert SDL.read_text().strip() == schema.as_str().strip(), (
        "schema.graphql is out of date: run `./dev studio schema > schema.graphql` and commit it"
    )


def test_every_type_field_and_argument_has_a_description() -> None:
    missing: list[str] = []
    for name, graphql_type in schema._schema.type_map.items():
        if name.startswith("__") or name in {"String", "Int", "Float", "Boolean", "ID"}:
            continue
        if not graphql_type.description:
            missing.append(name)
        if isinstance(
            graphql_type, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType
        ):
            for field_name, field in graphql_type.fields.items():
                if not field.description:
                    missing.append(f"{name}.{field_name}")
                for arg_name, arg in getattr(field, "args", {}).items():
                    if not arg.description:
                        missing.append(f"{name}.{field_name}({arg_name})")
        if isinstance(graphql_type, GraphQLEnumType):
            continue
    assert missing == []


CONTRACT_MUTATIONS = {
    "signUp": ("SignUpInput!", "AuthPayload!"),
    "logIn": ("LogInInput!", "AuthPayload!"),
    "createTeam": ("CreateTeamInput!", "TeamPayload!"),
    "inviteTeamMember": ("InviteTeamMemberInput!", "InvitationPayload!"),
    "acceptInvitation": ("AcceptInvitationInput!", "TeamPayload!"),
    "revokeInvitation": ("RevokeInvitationInput!", "DeletePayload!"),
    "removeTeamMember": ("RemoveTeamMemberInput!", "TeamPayload!"),
    "createProject": ("CreateProjectInput!", "ProjectPayload!"),
    "updateProject": ("UpdateProjectInput!", "ProjectPayload!"),
    "deleteProject": ("DeleteInput!", "DeletePayload!"),
    "createScene": ("CreateSceneInput!", "ScenePayload!"),
    "updateScene": ("UpdateSceneInput!", "ScenePayload!"),
    "deleteScene": ("DeleteInput!", "DeletePayload!"),
    "reorderScenes": ("ReorderInput!", "ProjectPayload!"),
    "createShot": ("CreateShotInput!", "ShotPayload!"),
    "updateShot": ("UpdateShotInput!", "ShotPayload!"),
    "deleteShot": ("DeleteInput!", "DeletePayload!"),
    "reorderShots": ("ReorderInput!", "ScenePayload!"),
    "addShotImages": ("AddShotImagesInput!", "GenerateShotImagesPayload!"),
    "setImageFavorite": ("SetImageFavoriteInput!", "ShotImagePayload!"),
    "deleteShotImage": ("DeleteInput!", "DeletePayload!"),
    "selectMasterShot": ("SelectMasterShotInput!", "StoryboardSelectionPayload!"),
    "generateShotImages": ("GenerateShotImagesInput!", "GenerateShotImagesPayload!"),
    "animateShot": ("AnimateShotInput!", "StoryboardSelectionPayload!"),
    "animateStoryboard": ("AnimateStoryboardInput!", "AnimateStoryboardPayload!"),
    "cancelGeneration": ("GenerationRefInput!", "GenerationPayload!"),
    "retryGeneration": ("GenerationRefInput!", "GenerationPayload!"),
}


def test_contract_mutations_have_their_fixed_shapes() -> None:
    mutation = schema._schema.mutation_type
    assert mutation is not None
    for name, (input_type, payload) in CONTRACT_MUTATIONS.items():
        field = mutation.fields[name]
        assert str(field.args["input"].type) == input_type, name
        assert str(field.type) == payload, name


def test_contract_queries_and_types_exist() -> None:
    query = schema._schema.query_type
    assert query is not None
    assert str(query.fields["node"].type) == "Node"
    assert str(query.fields["project"].type) == "Project"
    assert str(query.fields["projects"].type) == "ProjectConnection!"
    assert set(query.fields["projects"].args) >= {"teamId", "first", "after"}
    assert str(query.fields["viewer"].type) == "User"
    assert str(query.fields["generationModels"].type) == "[GenerationModel!]!"
    types = schema._schema.type_map
    for node_type in [
        "User",
        "Team",
        "Project",
        "Scene",
        "Shot",
        "ShotImage",
        "StoryboardSelection",
    ]:
        object_type = types[node_type]
        assert isinstance(object_type, GraphQLObjectType)
        assert types["Node"] in object_type.interfaces
    shot = types["Shot"]
    assert isinstance(shot, GraphQLObjectType)
    shot_images = shot.fields["images"]
    assert set(shot_images.args) == {"iterationNumber", "favoritesOnly"}
