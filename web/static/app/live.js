// Live data: GraphQL subscriptions over one graphql-transport-ws socket (the
// graphql-ws client), resumed after a dropped connection from the last cursor.
//
// Every feed of the API (projectEvents, iterationStatus, animationStatus,
// libraryEvents, teamEvents) sends events that each carry a `cursor`, and takes
// `after: <cursor>` to replay what came after it. `subscribeFeed` keeps the last
// cursor it saw in the subscription's own variables: the graphql-ws client sends the
// same payload again when it reconnects, so the server replays exactly what was
// missed. An event whose cursor was already seen is dropped (no duplicates).
//
// `connection` tells the page how the socket is: 'idle' (no feed open), 'connecting',
// 'online', 'reconnecting'. `caughtUp` counts the events replayed after the last
// reconnect, so the banner can say what was missed.
import { createClient } from 'graphql-ws';
import { signal, useEffect, useRef } from './lib.js';
import { session, sessionEnded } from './api.js';

export const connection = signal('idle');
/** {count, at} after a reconnect: how many events the feeds replayed. */
export const caughtUp = signal(null);

const CATCH_UP_WINDOW_MS = 2000;
const MAX_RETRY_WAIT_MS = 5000;

let client = null;
let clientToken = null;
let everConnected = false;
let reconnectedAt = 0;
let replayedSinceReconnect = 0;

function socketUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/graphql`;
}

function makeClient(token) {
  everConnected = false;
  const made = createClient({
    url: socketUrl(),
    lazy: true,
    lazyCloseTimeout: 3000,
    keepAlive: 10000,
    retryAttempts: Infinity,
    shouldRetry: () => true,
    retryWait: async (retries) => {
      const wait = Math.min(300 * 2 ** retries, MAX_RETRY_WAIT_MS) + Math.random() * 300;
      await new Promise((resolve) => setTimeout(resolve, wait));
    },
    connectionParams: () => (token ? { authorization: `Bearer ${token}` } : {}),
    on: {
      connecting: () => {
        connection.value = everConnected ? 'reconnecting' : 'connecting';
      },
      connected: () => {
        if (everConnected) {
          reconnectedAt = Date.now();
          replayedSinceReconnect = 0;
          caughtUp.value = { count: 0, at: reconnectedAt };
        }
        everConnected = true;
        connection.value = 'online';
      },
      closed: (event) => {
        // 4403 with TOKEN_INVALID/UNAUTHENTICATED first: the session is over.
        const reason = String(event?.reason ?? '');
        if (event?.code === 4403 && /^(TOKEN_INVALID|UNAUTHENTICATED)/.test(reason)) {
          sessionEnded();
        }
        if (made !== client) return;
        if (event?.code === 1000) {
          // Closed on purpose: no feed was open for a while (lazyCloseTimeout).
          everConnected = false;
          connection.value = 'idle';
        } else if (everConnected) {
          connection.value = 'reconnecting';
        }
      },
    },
  });
  return made;
}

function currentClient() {
  const token = session.value?.token ?? null;
  if (!client || token !== clientToken) {
    if (client) client.dispose();
    clientToken = token;
    client = makeClient(token);
  }
  return client;
}

/** Closes the socket (on log out); the next feed opens a new one. */
export function closeLive() {
  if (client) client.dispose();
  client = null;
  clientToken = null;
  connection.value = 'idle';
}

function noteReplayed() {
  if (reconnectedAt && Date.now() - reconnectedAt < CATCH_UP_WINDOW_MS) {
    replayedSinceReconnect += 1;
    caughtUp.value = { count: replayedSinceReconnect, at: reconnectedAt };
  }
}

/**
 * Opens a feed. `query` is a subscription document whose one root field returns an
 * event with a `cursor` and which takes `$after: String`; `variables` are the others.
 * onEvent(event) runs for each new event; onError(error) when the server ends the
 * feed with an error (e.g. NOT_FOUND once the viewer lost access). Returns close().
 */
export function subscribeFeed(query, variables, { onEvent, onError, after = null }) {
  const payload = { query, variables: { ...variables, after } };
  const seen = new Set();
  let closed = false;
  const dispose = currentClient().subscribe(payload, {
    next: (result) => {
      if (closed) return;
      if (result.errors?.length) {
        onError?.(result.errors[0]);
        return;
      }
      const event = result.data && Object.values(result.data)[0];
      if (!event) return;
      if (event.cursor) {
        if (seen.has(event.cursor)) return;
        seen.add(event.cursor);
        payload.variables.after = event.cursor;
      }
      noteReplayed();
      onEvent(event);
    },
    error: (error) => {
      if (closed) return;
      const first = Array.isArray(error) ? error[0] : error;
      onError?.(first instanceof Error ? first : { message: first?.message ?? 'The live feed stopped.', ...first });
    },
    complete: () => {},
  });
  return () => {
    closed = true;
    dispose();
  };
}

/**
 * A feed for as long as a component shows (and its `deps` stay the same).
 * The latest onEvent/onError are used, so they may close over fresh state.
 */
export function useFeed(query, variables, { onEvent, onError, enabled = true }, deps = []) {
  const handlers = useRef({ onEvent, onError });
  handlers.current = { onEvent, onError };
  useEffect(() => {
    if (!enabled) return undefined;
    return subscribeFeed(query, variables, {
      onEvent: (event) => handlers.current.onEvent?.(event),
      onError: (error) => handlers.current.onError?.(error),
    });
  }, [enabled, ...deps]); // eslint-disable-line
}
