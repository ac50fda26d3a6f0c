// The assets of one library search, a keyset page at a time, kept current by the
// team's `libraryEvents` feed: a new or changed asset is asked about with the same
// filter (narrowed to its own creation time, so the server decides whether it
// matches, words, stems and all) and then appears, is redrawn, or leaves; a deleted
// one, or one the viewer may no longer see, leaves.
import { useCallback, useEffect, useRef, useState } from '../lib.js';
import { gql } from '../api.js';
import { useFeed } from '../live.js';

export const ASSET_FIELDS = 'id name kind status thumbnailUrl tags mood category sceneType duration views createdAt shareLevel';
export const PAGE_SIZE = 100;

export const SEARCH_QUERY = `query LibrarySearch($filter: LibraryFilter, $sort: LibrarySort, $first: Int!, $after: String) {
  library(filter: $filter, sort: $sort, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { ${ASSET_FIELDS} }
  }
}`;

export const LIBRARY_EVENTS = `subscription LibraryEvents($teamId: ID!, $after: String) {
  libraryEvents(teamId: $teamId, after: $after) {
    cursor kind assetId changes recipientId at
    asset { id createdAt }
  }
}`;

function numberOf(id) {
  try {
    return Number(atob(id).split(':').pop()) || 0;
  } catch {
    return 0;
  }
}

/** a before b (-1), after (1) in the order `sort` ({field, direction}) gives; null: unknown. */
function compare(a, b, sort) {
  const value = {
    CREATED: (x) => Date.parse(x.createdAt),
    NAME: (x) => x.name,
    VIEWS: (x) => x.views,
    DURATION: (x) => x.duration,
  }[sort.field];
  if (!value) return null;
  const sign = sort.direction === 'ASC' ? 1 : -1;
  const [va, vb] = [value(a), value(b)];
  if (sort.field === 'DURATION' && (va === null) !== (vb === null)) return va === null ? 1 : -1;
  if (va < vb) return -sign;
  if (va > vb) return sign;
  return (numberOf(a.id) - numberOf(b.id)) * sign < 0 ? -1 : 1;
}

/** `items` with `asset` put where `sort` places it; null when it belongs to a page not loaded. */
function placed(items, asset, sort, hasNext, at) {
  let index = items.findIndex((item) => compare(asset, item, sort) < 0);
  if (sort.field === 'RELEVANCE') index = at >= 0 ? at : 0;
  if (index === -1) {
    if (hasNext) return null;
    index = items.length;
  }
  return [...items.slice(0, index), asset, ...items.slice(index)];
}

/** The filter narrowed to the millisecond `createdAt` falls in: a match is then that asset. */
function narrowed(filter, createdAt) {
  const start = new Date(Date.parse(createdAt));
  const end = new Date(start.getTime() + 1);
  const after = filter.createdAfter && Date.parse(filter.createdAfter) > start.getTime() ? filter.createdAfter : start.toISOString();
  const before = filter.createdBefore && Date.parse(filter.createdBefore) < end.getTime() ? filter.createdBefore : end.toISOString();
  return { ...filter, createdAfter: after, createdBefore: before };
}

/**
 * {items, total, hasNext, loading, error, loadMore, retryMore, reload} of the search (`filter`,
 * `sort`), live on `teamId`'s feed. `onChange()` runs after each event (to recount facets).
 */
export function useLibrarySearch({ filter, sort, teamId, onChange }) {
  const [state, setState] = useState({ items: [], total: 0, hasNext: false, cursor: null, loading: true, error: null, loaded: false });
  const current = useRef(state);
  current.current = state;
  const generation = useRef(0);
  const busy = useRef(false);
  const key = JSON.stringify([filter, sort]);

  const fetchPage = useCallback(async (after) => {
    const mine = generation.current;
    busy.current = true;
    setState((s) => ({ ...s, loading: true, error: null }));
    try {
      const data = await gql(SEARCH_QUERY, { filter, sort, first: PAGE_SIZE, after });
      if (mine !== generation.current) return;
      const page = data.library;
      setState((s) => {
        const have = after ? s.items : [];
        const ids = new Set(have.map((item) => item.id));
        return {
          items: [...have, ...page.nodes.filter((node) => !ids.has(node.id))],
          total: page.totalCount,
          hasNext: page.pageInfo.hasNextPage,
          cursor: page.pageInfo.endCursor,
          loading: false,
          error: null,
          loaded: true,
        };
      });
    } catch (error) {
      if (mine === generation.current) setState((s) => ({ ...s, loading: false, error }));
    } finally {
      if (mine === generation.current) busy.current = false;
    }
  }, [key]); // eslint-disable-line

  const reload = useCallback(() => {
    generation.current += 1;
    busy.current = false;
    setState((s) => ({ ...s, items: [], total: 0, hasNext: false, cursor: null, loaded: false }));
    fetchPage(null);
  }, [fetchPage]);

  useEffect(() => {
    reload();
    return () => { generation.current += 1; };
  }, [reload]);

  const loadMore = useCallback(() => {
    const s = current.current;
    if (busy.current || !s.hasNext || s.error) return;
    fetchPage(s.cursor);
  }, [fetchPage]);

  // Live: assets to look at again, gathered over a moment (events come in bursts).
  const pending = useRef(new Map());
  const timer = useRef(null);
  const check = useCallback(async () => {
    const batch = [...pending.current.values()];
    pending.current.clear();
    if (batch.length === 0) return;
    const mine = generation.current;
    const removed = batch.filter((e) => !e.createdAt).map((e) => e.id);
    const asked = batch.filter((e) => e.createdAt);
    let found = new Map();
    if (asked.length) {
      const vars = {};
      const fields = asked.map((e, i) => {
        vars[`f${i}`] = narrowed(filter, e.createdAt);
        return `a${i}: library(filter: $f${i}, sort: $sort, first: 100) { nodes { ${ASSET_FIELDS} } }`;
      });
      const params = asked.map((_, i) => `$f${i}: LibraryFilter`).join(', ');
      try {
        const data = await gql(`query LibraryCheck(${params}, $sort: LibrarySort) { ${fields.join(' ')} }`, { ...vars, sort });
        found = new Map(asked.map((e, i) => [e.id, data[`a${i}`].nodes.find((n) => n.id === e.id) ?? null]));
      } catch {
        return; // The next event, or a reload, catches up.
      }
    }
    if (mine !== generation.current) return;
    setState((s) => {
      let { items, total } = s;
      const drop = (id) => {
        const at = items.findIndex((item) => item.id === id);
        if (at >= 0) {
          items = [...items.slice(0, at), ...items.slice(at + 1)];
          total = Math.max(0, total - 1);
        }
        return at;
      };
      removed.forEach(drop);
      for (const { id, created } of asked) {
        const asset = found.get(id);
        const at = drop(id);
        if (!asset) continue;
        const next = placed(items, asset, sort, s.hasNext, at);
        // Counted again if it was shown, or is new; a change of one on a page not
        // loaded yet may or may not have matched before: the count stays.
        if (at >= 0 || created || !s.hasNext) total += 1;
        if (next) items = next;
      }
      return { ...s, items, total };
    });
  }, [key]); // eslint-disable-line

  useFeed(LIBRARY_EVENTS, { teamId }, {
    enabled: Boolean(teamId),
    // The latest `check` (this search's) runs: the feed stays open across searches.
    onEvent: (event) => {
      if (event.kind === 'SNAPSHOT' || !event.assetId) return;
      const gone = event.kind === 'ASSET_DELETED' || !event.asset;
      const before = pending.current.get(event.assetId);
      pending.current.set(event.assetId, {
        id: event.assetId,
        createdAt: gone ? null : event.asset.createdAt,
        created: event.kind === 'ASSET_CREATED' || Boolean(before?.created),
      });
      clearTimeout(timer.current);
      timer.current = setTimeout(check, 150);
      onChange?.(event);
    },
  }, [teamId]);
  useEffect(() => () => clearTimeout(timer.current), []);

  /** Tries the page that failed again. */
  const retryMore = useCallback(() => {
    if (!busy.current) fetchPage(current.current.cursor);
  }, [fetchPage]);

  return { ...state, loadMore, retryMore, reload };
}
