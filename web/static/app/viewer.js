// Who is signed in and the teams they work in (the `viewer` query), and the team
// the editor works in now. Pages read `viewer.value` and `team.value`.
import { signal, computed } from './lib.js';
import {
  gql, mutate, session, currentTeamId, chooseTeam, endSession, forgetLocalCopies, onSignedOut,
} from './api.js';
import { closeLive } from './live.js';

export const VIEWER_QUERY = `query Viewer {
  viewer { id name email teams { id name isPersonal viewerRole } }
}`;

/** {id, name, email, teams: [{id, name, isPersonal, viewerRole}]} or null. */
export const viewer = signal(null);
export const viewerError = signal(null);

/** The team in use: the one chosen before if the viewer still belongs to it, else the first. */
export const team = computed(() => {
  const teams = viewer.value?.teams ?? [];
  return teams.find((t) => t.id === currentTeamId.value) ?? teams[0] ?? null;
});

/** Reads the viewer again (after a sign-in, a new team, an invitation accepted). */
export async function loadViewer() {
  if (!session.value?.token) {
    viewer.value = null;
    return null;
  }
  try {
    const data = await gql(VIEWER_QUERY);
    viewer.value = data.viewer;
    viewerError.value = null;
    if (data.viewer && !data.viewer.teams.some((t) => t.id === currentTeamId.value) && data.viewer.teams[0]) {
      chooseTeam(data.viewer.teams[0].id);
    }
    return data.viewer;
  } catch (error) {
    viewerError.value = error;
    return null;
  }
}

/** Logs out on the server (revoking the token), then here. */
export async function logOut() {
  try {
    await mutate('mutation { logOut { userErrors { code message field } } }');
  } catch {
    // Signed out here all the same; the token is forgotten.
  }
  endSession();
  // A deliberate log-out leaves nothing of theirs (unsaved planner text) for the next
  // person at this browser; an expired session keeps it until they sign in again.
  forgetLocalCopies();
  closeLive();
  viewer.value = null;
}

onSignedOut(() => {
  closeLive();
  viewer.value = null;
});
