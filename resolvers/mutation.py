"""The root Mutation: every mutation takes one `input` and returns a payload with `userErrors`."""

import strawberry

from resolvers import (
    accounts,
    constellation,
    evolution,
    generation,
    invitations,
    library,
    sharing,
    storyboard,
)
from resolvers import collections as collection_resolvers
from schema.operations import PUBLIC


@strawberry.type(description="Everything you can change.")
class Mutation:
    sign_up = strawberry.mutation(
        resolver=accounts.sign_up,
        description="Create an account and its personal team; returns a bearer token. "
        "Limited per address (RATE_LIMITED, whose message says when to try again).",
        metadata=PUBLIC,
    )
    log_in = strawberry.mutation(
        resolver=accounts.log_in,
        description="Exchange an email and password for a bearer token. After repeated "
        "failures for an account or from an address each attempt must wait longer: "
        "RATE_LIMITED, whose message says in how many seconds to try again.",
        metadata=PUBLIC,
    )
    log_out = strawberry.mutation(
        resolver=accounts.log_out, description="Revoke the bearer token this request was made with."
    )
    create_team = strawberry.mutation(
        resolver=accounts.create_team, description="Create a team, owned by you."
    )
    invite_team_member = strawberry.mutation(
        resolver=invitations.invite_team_member,
        description="Invite someone to a team you own or administer: returns a single-use code "
        "for you to pass on (shown only once), valid for a limited time.",
    )
    accept_invitation = strawberry.mutation(
        resolver=invitations.accept_invitation,
        description="Join a team with an invitation code, in the role it was made for.",
    )
    revoke_invitation = strawberry.mutation(
        resolver=invitations.revoke_invitation,
        description="Revoke a pending invitation of a team you own or administer.",
    )
    remove_team_member = strawberry.mutation(
        resolver=accounts.remove_team_member,
        description="Remove a member from a team you manage, or leave a team yourself.",
    )

    create_project = strawberry.mutation(
        resolver=storyboard.create_project, description="Create a project in one of your teams."
    )
    update_project = strawberry.mutation(
        resolver=storyboard.update_project,
        description="Change a project's title, prompt, planner data or workflow status.",
    )
    delete_project = strawberry.mutation(
        resolver=storyboard.delete_project,
        description="Delete a project with all its scenes, shots, images and selections.",
    )

    create_scene = strawberry.mutation(
        resolver=storyboard.create_scene,
        description="Create a scene, appended or inserted at a number, with its shots.",
    )
    update_scene = strawberry.mutation(
        resolver=storyboard.update_scene, description="Change a scene's title or description."
    )
    delete_scene = strawberry.mutation(
        resolver=storyboard.delete_scene,
        description="Delete a scene with its shots, images and selections; later scenes move up.",
    )
    reorder_scenes = strawberry.mutation(
        resolver=storyboard.reorder_scenes, description="Put a project's scenes in a new order."
    )

    create_shot = strawberry.mutation(
        resolver=storyboard.create_shot,
        description="Create a shot, appended or inserted at a number.",
    )
    update_shot = strawberry.mutation(
        resolver=storyboard.update_shot,
        description="Change a shot's description or initial prompt.",
    )
    delete_shot = strawberry.mutation(
        resolver=storyboard.delete_shot,
        description="Delete a shot with its images and selection; later shots move up.",
    )
    reorder_shots = strawberry.mutation(
        resolver=storyboard.reorder_shots, description="Put a scene's shots in a new order."
    )

    add_shot_images = strawberry.mutation(
        resolver=storyboard.add_shot_images,
        description="Record a batch of images made elsewhere as the shot's next iteration.",
    )
    set_image_favorite = strawberry.mutation(
        resolver=storyboard.set_image_favorite,
        description="Mark or unmark an image as a favourite.",
    )
    delete_shot_image = strawberry.mutation(
        resolver=storyboard.delete_shot_image,
        description="Delete an image that is not its shot's master.",
    )
    select_master_shot = strawberry.mutation(
        resolver=storyboard.select_master_shot,
        description="Make a COMPLETE image the shot's master; choosing again replaces it.",
    )

    generate_shot_images = strawberry.mutation(
        resolver=generation.generate_shot_images,
        description="Start the shot's next iteration: variantCount images, PENDING at once, "
        "generated on Replicate; with parentImageId, an image-to-image refinement of it.",
    )
    animate_shot = strawberry.mutation(
        resolver=generation.animate_shot,
        description="Animate a selection's master image into a video clip on Replicate.",
    )
    animate_storyboard = strawberry.mutation(
        resolver=generation.animate_storyboard,
        description="Animate every selection of a project (only those without a clip, by default).",
    )
    cancel_generation = strawberry.mutation(
        resolver=generation.cancel_generation,
        description="Cancel a PENDING or PROCESSING image or animation, on the provider too.",
    )
    retry_generation = strawberry.mutation(
        resolver=generation.retry_generation,
        description="Start a FAILED or CANCELED image or animation again.",
    )

    # --- collections ---
    create_collection = strawberry.mutation(
        resolver=collection_resolvers.create_collection,
        description="Create a collection in a team where you are an EDITOR or more.",
    )
    update_collection = strawberry.mutation(
        resolver=collection_resolvers.update_collection,
        description="Change a collection's name, description, type, tags, category, cover or "
        "share level (the level: only its creator and the team's owners and admins).",
    )
    delete_collection = strawberry.mutation(
        resolver=collection_resolvers.delete_collection,
        description="Delete a collection (its creator, or the team's owners and admins); its "
        "assets stay in the library.",
    )
    add_to_collection = strawberry.mutation(
        resolver=collection_resolvers.add_to_collection,
        description="Put an asset of the collection's team into it, at a position or appended; "
        "an asset already in it is ALREADY_IN_COLLECTION.",
    )
    remove_from_collection = strawberry.mutation(
        resolver=collection_resolvers.remove_from_collection,
        description="Take an asset out of a collection; later items move up one.",
    )
    reorder_collection = strawberry.mutation(
        resolver=collection_resolvers.reorder_collection,
        description="Put a collection's items in a new order.",
    )
    # --- sharing ---
    share_asset = strawberry.mutation(
        resolver=sharing.share_asset,
        description="Share an asset you hold ADMIN on with one user, by ID or by the email of "
        "a teammate, until an expiry or until revoked; sharing again updates the share.",
    )
    revoke_share = strawberry.mutation(
        resolver=sharing.revoke_share,
        description="Revoke a share: as an ADMIN of its asset, or as its recipient.",
    )
    set_share_level = strawberry.mutation(
        resolver=sharing.set_share_level,
        description="Set who sees an asset you hold ADMIN on besides its shares: PRIVATE, TEAM "
        "or PUBLIC.",
    )
    # --- constellation ---
    set_constellation_position = strawberry.mutation(
        resolver=constellation.set_constellation_position,
        description="Pin an asset (EDIT on it), or a cluster's centre (a writer's role in its "
        "team), at a position of the constellation map; layouts never move it again.",
    )
    # --- evolution: duplicate, remix, regenerate ---
    duplicate_asset = strawberry.mutation(
        resolver=evolution.duplicate_asset,
        description="Copy an asset exactly (a READY DUPLICATE sharing its file) as its next "
        "lineage version; counts a duplicate on the original. Needs EDIT and `canDuplicate`.",
    )
    remix_asset = strawberry.mutation(
        resolver=evolution.remix_asset,
        description="Make a DRAFT REMIX of an asset with a new prompt, recording the words "
        "added and removed; counts a remix on the original. Needs EDIT and `canRemix`.",
    )
    regenerate_asset = strawberry.mutation(
        resolver=evolution.regenerate_asset,
        description="Generate an asset on Replicate: a DRAFT or FAILED one in place, a READY "
        "one as a new REGENERATE version. GENERATING, then READY or FAILED.",
    )
    # --- edits ---
    update_asset = strawberry.mutation(
        resolver=library.update_asset,
        description="Change an asset's name, description, tags, category, mood or scene type "
        "(needs EDIT on it).",
    )
    delete_asset = strawberry.mutation(
        resolver=library.delete_asset,
        description="Delete an asset (needs ADMIN on it): its shares, views and places in "
        "collections go with it, its stored file once nothing else uses that file. The "
        "project it came from is not touched.",
    )
