// The team's live feed (`teamEvents`): projects created, changed and deleted, members
// joining, leaving or changing role, invitations made, revoked and accepted. The
// projects list and the team page follow it.
import { useState, useEffect } from './lib.js';
import { useFeed } from './live.js';
import { loadViewer } from './viewer.js';
import { toast } from './ui.js';

export const TEAM_EVENTS = `subscription TeamEvents($teamId: ID!, $after: String) {
  teamEvents(teamId: $teamId, after: $after) { cursor sequence kind nodeId changes at teamId }
}`;

/**
 * Follows the team's feed while the component shows: onEvent(event) for each event
 * (SNAPSHOT first, where the feed starts), onError(error) when the server ends it.
 * Returns the feed's state: 'connecting', 'on' (its first event came) or 'off'
 * (it ended with an error). The page puts it in `data-live` for tests and styles.
 * When the person leaves the team or is removed from it (the feed ends NOT_FOUND),
 * their teams are read again, so the editor moves on to another team.
 */
export function useTeamFeed(teamId, { onEvent, onError }) {
  const [state, setState] = useState('connecting');
  useEffect(() => setState('connecting'), [teamId]);
  useFeed(TEAM_EVENTS, { teamId }, {
    enabled: Boolean(teamId),
    onEvent: (event) => {
      setState('on');
      onEvent(event);
    },
    onError: (error) => {
      setState('off');
      if (error?.extensions?.code === 'NOT_FOUND') {
        toast('You are no longer in this team.', 'info');
        loadViewer();
      }
      onError?.(error);
    },
  }, [teamId]);
  return state;
}
