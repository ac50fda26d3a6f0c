// GraphQL over HTTP (queries and mutations) and the signed-in session.
//
// Every call goes to POST /graphql with the session's bearer token. Errors come in
// three kinds, each a class below, so a page can say what to do next:
//   ApiError     the request failed (network, HTTP status, or GraphQL `errors`);
//                `code` is the error's `extensions.code` when the server gave one.
//   UserErrors   a mutation answered `userErrors` (expected refusals: bad input, a
//                missing right...), each {code, field, message}.
// An UNAUTHENTICATED or TOKEN_INVALID answer ends the session here too and sends the person to log in.
import { signal, computed, useState, useEffect, useRef, useCallback } from './lib.js';

const SESSION_KEY = 'studio.session';
const TEAM_KEY = 'studio.team';

function stored(key) {
  try {
    return JSON.parse(localStorage.getItem(key) || 'null');
  } catch {
    return null;
  }
}

/** {token, user: {id, name, email}} while signed in, else null. */
export const session = signal(stored(SESSION_KEY));
/** The team the person works in now (its global ID), remembered across reloads. */
export const currentTeamId = signal(stored(TEAM_KEY));
export const signedIn = computed(() => Boolean(session.value?.token));

export function startSession(token, user) {
  session.value = { token, user };
  localStorage.setItem(SESSION_KEY, JSON.stringify(session.value));
}

export function endSession() {
  session.value = null;
  localStorage.removeItem(SESSION_KEY);
}

/** Forgets what the editor kept in this browser for the person (on logging out). */
export function forgetLocalCopies() {
  for (let i = localStorage.length - 1; i >= 0; i -= 1) {
    const key = localStorage.key(i);
    if (key?.startsWith('studio.planner.')) localStorage.removeItem(key);
  }
}

export function chooseTeam(teamId) {
  currentTeamId.value = teamId;
  localStorage.setItem(TEAM_KEY, JSON.stringify(teamId));
}

// Another tab signed in or out: follow it.
window.addEventListener('storage', (event) => {
  if (event.key === SESSION_KEY) session.value = stored(SESSION_KEY);
  if (event.key === TEAM_KEY) currentTeamId.value = stored(TEAM_KEY);
});

export class ApiError extends Error {
  constructor(message, { code = null, status = null, errors = [] } = {}) {
    super(message);
    this.code = code;
    this.status = status;
    this.errors = errors;
  }
}

export class UserErrors extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join(' '));
    this.errors = errors;
    this.code = errors[0]?.code ?? null;
  }
}

/** Listeners told when the server says the session is no longer valid. */
const signedOutListeners = new Set();
export function onSignedOut(listener) {
  signedOutListeners.add(listener);
  return () => signedOutListeners.delete(listener);
}

/** The server no longer knows this session (logged out elsewhere, expired): sign in again. */
export function sessionEnded() {
  if (!session.value) return;
  endSession();
  signedOutListeners.forEach((listener) => listener());
}

/**
 * Runs one GraphQL operation; resolves to its `data`.
 * Throws ApiError (network, HTTP or GraphQL errors). `signal` aborts the request.
 */
export async function gql(query, variables = {}, { signal: abort } = {}) {
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
  let token = session.value?.token;
  if (token && (typeof token !== 'string' || !/^[\x21-\x7e]+$/.test(token))) {
    // Not a token any server gave (the browser would refuse to send it): sign in again.
    sessionEnded();
    token = null;
  }
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch('/graphql', {
      method: 'POST', headers, body: JSON.stringify({ query, variables }), signal: abort,
    });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError('The server cannot be reached. Check your connection; we will keep trying.', { code: 'NETWORK' });
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy's page, a 502...
  }
  if (body?.errors?.length) {
    const first = body.errors[0];
    const code = first.extensions?.code ?? null;
    if ((code === 'UNAUTHENTICATED' || code === 'TOKEN_INVALID') && token) sessionEnded();
    throw new ApiError(first.message, { code, status: response.status, errors: body.errors });
  }
  if (!response.ok || !body) {
    const message = response.status === 429
      ? 'Too many requests just now. Wait a few seconds and try again.'
      : `The server answered ${response.status}. Try again in a moment.`;
    throw new ApiError(message, { code: `HTTP_${response.status}`, status: response.status });
  }
  return body.data;
}

/**
 * Runs a mutation with one root field; resolves to its payload.
 * Throws UserErrors when the payload has any, ApiError as `gql`.
 */
export async function mutate(query, variables = {}) {
  const data = await gql(query, variables);
  const payload = Object.values(data)[0];
  if (payload?.userErrors?.length) throw new UserErrors(payload.userErrors);
  return payload;
}

/**
 * A query's state for a component: {data, error, loading, reload, setData}.
 * Runs again when `deps` change; a stale answer never overwrites a newer one.
 */
export function useQuery(query, variables, deps = []) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const generation = useRef(0);
  const run = useCallback(async () => {
    const mine = ++generation.current;
    setState((s) => ({ ...s, loading: true }));
    try {
      const data = await gql(query, variables);
      if (mine === generation.current) setState({ data, error: null, loading: false });
    } catch (error) {
      if (mine === generation.current) setState((s) => ({ ...s, error, loading: false }));
    }
  }, deps); // eslint-disable-line
  useEffect(() => {
    run();
    return () => { generation.current++; };
  }, [run]);
  const setData = useCallback((update) => setState((s) => ({
    ...s, data: typeof update === 'function' ? update(s.data) : update,
  })), []);
  return { ...state, reload: run, setData };
}

/** What to tell a person about an error, with what to do next. */
export function describeError(error) {
  if (!error) return '';
  if (error instanceof UserErrors) return error.message;
  if (error instanceof ApiError) {
    if (error.code === 'NOT_FOUND') return 'This is not there any more, or you cannot see it.';
    if (error.code === 'FORBIDDEN') return 'You do not have the right to do this. Ask a team owner.';
    return error.message;
  }
  return 'Something went wrong. Reload the page to try again.';
}
