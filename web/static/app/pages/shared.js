// Shared with me (/shared): the assets others shared with you by shares in force
// (`sharedWithMe`), newest share first, as a grid with each share's permission, expiry
// and note. Kept current by the feeds of your teams (a share made, changed or revoked
// by a teammate) and by the clock (a share that expires leaves when it does).
import { html, useCallback, useEffect, useRef, useState } from '../lib.js';
import { gql } from '../api.js';
import { useFeed } from '../live.js';
import { viewer } from '../viewer.js';
import { Empty, ErrorBox, Loading, ago } from '../ui.js';
import { AssetGrid, enumLabel, formatDate } from '../library/cards.js';
import { ASSET_FIELDS, LIBRARY_EVENTS } from '../library/results.js';

const PAGE_SIZE = 60;
const SHARED = `query SharedWithMe($first: Int!, $after: String) {
  sharedWithMe(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges {
      share { id permission expiresAt message updatedAt sharedBy { id name } }
      node { ${ASSET_FIELDS} team { id name } }
    }
  }
}`;
const MAX_TIMER_MS = 2 ** 31 - 1;

const PERMISSION = {
  VIEW: 'Can view',
  EDIT: 'Can edit',
  ADMIN: 'Can manage',
};

function ShareFacts({ share }) {
  const expires = share.expiresAt
    ? html`<span class="share-expiry">Until ${formatDate(share.expiresAt)} (ends ${ago(share.expiresAt)})</span>`
    : html`<span class="share-expiry">No end date</span>`;
  return html`<span class="share-facts">
    <span class=${`badge badge-${share.permission.toLowerCase()}`}>${PERMISSION[share.permission] ?? enumLabel(share.permission)}</span>
    ${expires}
    ${share.sharedBy && html`<span class="share-by">From ${share.sharedBy.name}</span>`}
    ${share.message && html`<span class="share-message">“${share.message}”</span>`}
  </span>`;
}

/** One team's library feed: `onEvent` for each event (mounted once per team). */
function TeamFeed({ teamId, onEvent }) {
  useFeed(LIBRARY_EVENTS, { teamId }, { onEvent }, [teamId]);
  return null;
}

export default function SharedPage() {
  const [state, setState] = useState({ edges: [], total: 0, hasNext: false, cursor: null, loaded: false, loading: true, error: null });
  const current = useRef(state);
  current.current = state;
  const generation = useRef(0);
  const busy = useRef(false);
  const fetchPage = useCallback(async (after) => {
    const mine = generation.current;
    busy.current = true;
    setState((s) => ({ ...s, loading: true, error: null }));
    try {
      const data = await gql(SHARED, { first: PAGE_SIZE, after });
      if (mine !== generation.current) return;
      const page = data.sharedWithMe;
      setState((s) => {
        const have = after ? s.edges : [];
        const ids = new Set(have.map((e) => e.node.id));
        return {
          edges: [...have, ...page.edges.filter((e) => !ids.has(e.node.id))],
          total: page.totalCount,
          hasNext: page.pageInfo.hasNextPage,
          cursor: page.pageInfo.endCursor,
          loaded: true,
          loading: false,
          error: null,
        };
      });
    } catch (error) {
      if (mine === generation.current) setState((s) => ({ ...s, loading: false, error }));
    } finally {
      if (mine === generation.current) busy.current = false;
    }
  }, []);
  const reload = useCallback(() => {
    generation.current += 1;
    busy.current = false;
    fetchPage(null);
  }, [fetchPage]);
  useEffect(() => {
    reload();
    return () => { generation.current += 1; };
  }, [reload]);
  const loadMore = useCallback(() => {
    const s = current.current;
    if (!busy.current && s.hasNext && !s.error) fetchPage(s.cursor);
  }, [fetchPage]);

  // A share that ends sends no event: read the list again when the first one ends.
  useEffect(() => {
    const ends = state.edges.map((e) => e.share.expiresAt).filter(Boolean).map(Date.parse);
    if (ends.length === 0) return undefined;
    const wait = Math.min(MAX_TIMER_MS, Math.max(0, Math.min(...ends) - Date.now()) + 500);
    const timer = setTimeout(reload, wait);
    return () => clearTimeout(timer);
  }, [state.edges]);

  const pending = useRef(null);
  useEffect(() => () => clearTimeout(pending.current), []);
  const me = viewer.value;
  const onEvent = (event) => {
    if (event.kind === 'SNAPSHOT') return;
    const mine = event.kind === 'ASSET_SHARED' && event.recipientId === me?.id;
    const shown = current.current.edges.some((e) => e.node.id === event.assetId);
    if (!mine && !shown) return;
    clearTimeout(pending.current);
    pending.current = setTimeout(reload, 200);
  };

  const byId = new Map(state.edges.map((e) => [e.node.id, e.share]));
  const assets = state.edges.map((e) => e.node);
  let body;
  if (state.error && !state.loaded) body = html`<${ErrorBox} title="Could not load what is shared with you" error=${state.error} onRetry=${reload} />`;
  else if (!state.loaded) body = html`<${Loading} />`;
  else if (assets.length === 0) {
    body = html`<${Empty}><p>Nothing is shared with you right now.</p>
      <p>When someone shares an asset with you, it appears here until the share ends.</p></${Empty}>`;
  } else {
    body = html`<${AssetGrid} assets=${assets} onEnd=${loadMore} cardHeight=${300}
        label=${`Shared with me, ${state.total} ${state.total === 1 ? 'asset' : 'assets'}`}
        extra=${(asset) => html`<${ShareFacts} share=${byId.get(asset.id)} />`} />
      ${state.error && html`<${ErrorBox} title="More could not load" error=${state.error} onRetry=${loadMore} />`}`;
  }
  return html`<section class="page shared-page">
    <h1>Shared with me</h1>
    ${(me?.teams ?? []).map((t) => html`<${TeamFeed} key=${t.id} teamId=${t.id} onEvent=${onEvent} />`)}
    ${state.loaded && html`<p class="library-count" role="status">${state.total} ${state.total === 1 ? 'asset is' : 'assets are'} shared with you.</p>`}
    ${body}
  </section>`;
}
