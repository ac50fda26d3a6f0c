// The scene iterator's GraphQL: the sidebar's scenes and shots, one shot with the
// models it can use, its live iterations, and the mutations a tile offers.
import { PARAMETER_FIELDS } from './params.js';

const ERRORS = 'userErrors { code field message }';
const MASTER = 'selectedImage { id thumbnailUrl imageUrl iterationNumber variantNumber }';

export const IMAGE = `id iterationNumber variantNumber status isFavorite error model updatedAt
  thumbnailUrl imageUrl parentImage { id }`;

export const ITERATION = `iterationNumber prompt status
  parentImage { id iterationNumber variantNumber thumbnailUrl imageUrl }
  images { ${IMAGE} }`;

export const SHOTS = `query IteratorShots($id: ID!) {
  project(id: $id) { id scenes { id sceneNumber title
    shots { id shotNumber description ${MASTER} } } }
}`;

export const SHOT = `query IteratorShot($id: ID!) {
  node(id: $id) { ... on Shot { id shotNumber description initialPrompt
    scene { id sceneNumber title project { id } } ${MASTER} } }
  generationModels { key kinds defaultFor description parameters { ${PARAMETER_FIELDS} } }
}`;

export const MASTER_OF_SHOT = `query IteratorMaster($id: ID!) {
  node(id: $id) { ... on Shot { id ${MASTER} } }
}`;

export const ITERATION_STATUS = `subscription IterationStatus($shotId: ID!, $after: String) {
  iterationStatus(shotId: $shotId, after: $after) {
    cursor shot { id } iterations { ${ITERATION} } image { id status }
  }
}`;

export const GENERATE = `mutation Generate($input: GenerateShotImagesInput!) {
  generateShotImages(input: $input) { iteration { ${ITERATION} } ${ERRORS} }
}`;

export const FAVORITE = `mutation Favorite($input: SetImageFavoriteInput!) {
  setImageFavorite(input: $input) { image { ${IMAGE} } ${ERRORS} }
}`;

export const SELECT_MASTER = `mutation SelectMaster($input: SelectMasterShotInput!) {
  selectMasterShot(input: $input) { selection { id shot { id ${MASTER} } } ${ERRORS} }
}`;

export const CANCEL = `mutation Cancel($input: GenerationRefInput!) {
  cancelGeneration(input: $input) { image { ${IMAGE} } ${ERRORS} }
}`;

export const RETRY = `mutation Retry($input: GenerationRefInput!) {
  retryGeneration(input: $input) { image { ${IMAGE} } ${ERRORS} }
}`;
