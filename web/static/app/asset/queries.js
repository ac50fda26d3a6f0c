// The GraphQL documents of the asset page (pages/asset.js and its parts here).

export const SHARE_FIELDS = `id permission message expiresAt createdAt updatedAt active userId
  user { id name email } sharedBy { id name }`;

export const ASSET_FIELDS = `id kind name description status shareLevel canDuplicate canRemix
  mimeType fileSize width height duration fps prompt model generationParams tags category mood
  sceneType version branchName evolutionType evolutionNote views duplicateCount remixCount error
  createdAt updatedAt fileUrl thumbnailUrl viewerPermission usedInProjects isFavorite
  promptDelta { added removed }
  team { id name viewerRole }
  creator { id name }
  sourceProject { id title }
  parent { id name }
  root { id name }
  shares { ${SHARE_FIELDS} }`;

export const ASSET = `query AssetPage($id: ID!) { asset(id: $id) { ${ASSET_FIELDS} } }`;

const NODE = 'evolutionType version branchName createdAt asset { id name kind status }';

export const LINEAGE = `query AssetLineage($id: ID!) {
  lineage(assetId: $id) {
    truncated
    ancestors { ${NODE} }
    tree { ${NODE} }
    descendants { parentId ${NODE} }
  }
}`;

export const LIBRARY_EVENTS = `subscription AssetLibraryEvents($teamId: ID!, $after: String) {
  libraryEvents(teamId: $teamId, after: $after) {
    cursor kind assetId changes recipientId at
    asset { id parent { id } }
  }
}`;

export const UPDATE_ASSET = `mutation UpdateAsset($input: UpdateAssetInput!) {
  updateAsset(input: $input) { asset { ${ASSET_FIELDS} } userErrors { code field message } }
}`;

export const SET_SHARE_LEVEL = `mutation SetShareLevel($input: SetShareLevelInput!) {
  setShareLevel(input: $input) { asset { id shareLevel } userErrors { code field message } }
}`;

export const DELETE_ASSET = `mutation DeleteAsset($input: DeleteInput!) {
  deleteAsset(input: $input) { deletedId userErrors { code field message } }
}`;

export const SHARE_ASSET = `mutation ShareAsset($input: ShareAssetInput!) {
  shareAsset(input: $input) { share { ${SHARE_FIELDS} } userErrors { code field message } }
}`;

export const REVOKE_SHARE = `mutation RevokeShare($input: RevokeShareInput!) {
  revokeShare(input: $input) { deletedId userErrors { code field message } }
}`;

export const DUPLICATE_ASSET = `mutation DuplicateAsset($input: DuplicateAssetInput!) {
  duplicateAsset(input: $input) { asset { id } userErrors { code field message } }
}`;

export const REMIX_ASSET = `mutation RemixAsset($input: RemixAssetInput!) {
  remixAsset(input: $input) { asset { id } userErrors { code field message } }
}`;

export const REGENERATE_ASSET = `mutation RegenerateAsset($input: RegenerateAssetInput!) {
  regenerateAsset(input: $input) { asset { id status } userErrors { code field message } }
}`;

export const GENERATION_MODELS = `query GenerationModels {
  generationModels {
    key replicateModel description kinds defaultFor
    parameters { name type default description minimum maximum choices maxLength }
  }
}`;
