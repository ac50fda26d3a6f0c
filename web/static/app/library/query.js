// A library search as it lives in the URL, so a search is a deep link and Back
// restores the one before: `parseSearch(query)` reads it from the page's query string,
// `toFilter`/`toSort` turn it into the `library` query's LibraryFilter and LibrarySort,
// and `changeSearch(update)` writes a change as a new history entry.
//
// Keys: q (text), kind, tag, category, mood, scene, model, creator, project, level
// (each repeatable: the values of one filter combine with OR), all=1 (tagsMatch ALL),
// collection, from and to (dates, YYYY-MM-DD, `to` included), minDur and maxDur
// (seconds), lineage (yes | no), fav=1, scope (all | public; default: the team in use),
// sort (RELEVANCE | CREATED | NAME | DURATION | VIEWS), dir (ASC | DESC), view (list).
import { location$, navigate } from '../router.js';

/** The repeatable keys, each with the LibraryFilter field it fills. */
export const LIST_KEYS = {
  kind: 'kinds',
  tag: 'tags',
  category: 'categories',
  mood: 'moods',
  scene: 'sceneTypes',
  model: 'models',
  creator: 'creatorIds',
  project: 'projectIds',
  level: 'shareLevels',
};

export const SORT_FIELDS = [
  ['RELEVANCE', 'Relevance'],
  ['CREATED', 'Date made'],
  ['NAME', 'Name'],
  ['DURATION', 'Duration'],
  ['VIEWS', 'Views'],
];

const SORTS = new Set(SORT_FIELDS.map(([value]) => value));
const DATE = /^\d{4}-\d{2}-\d{2}$/;

function number(text) {
  if (text === null || text === '') return null;
  const value = Number(text);
  return Number.isFinite(value) && value >= 0 ? value : null;
}

/** The search a query string (URLSearchParams) describes; unknown values are dropped. */
export function parseSearch(query) {
  const search = { text: (query.get('q') ?? '').trim() };
  for (const key of Object.keys(LIST_KEYS)) search[key] = query.getAll(key).filter(Boolean);
  search.all = query.get('all') === '1';
  search.collection = query.get('collection') || '';
  search.from = DATE.test(query.get('from') ?? '') ? query.get('from') : '';
  search.to = DATE.test(query.get('to') ?? '') ? query.get('to') : '';
  search.minDur = number(query.get('minDur'));
  search.maxDur = number(query.get('maxDur'));
  search.lineage = ['yes', 'no'].includes(query.get('lineage')) ? query.get('lineage') : '';
  search.fav = query.get('fav') === '1';
  search.scope = ['all', 'public'].includes(query.get('scope')) ? query.get('scope') : '';
  const sort = query.get('sort');
  // Relevance means something only with words to match: fall back to the default.
  search.sort = SORTS.has(sort) && (sort !== 'RELEVANCE' || search.text) ? sort : '';
  search.dir = query.get('dir') === 'ASC' ? 'ASC' : 'DESC';
  search.view = query.get('view') === 'list' ? 'list' : 'grid';
  return search;
}

/** The day after `day` (YYYY-MM-DD) at midnight, local time, as ISO: `to` includes its day. */
function dayAfter(day) {
  const [y, m, d] = day.split('-').map(Number);
  return new Date(y, m - 1, d + 1).toISOString();
}

function dayStart(day) {
  const [y, m, d] = day.split('-').map(Number);
  return new Date(y, m - 1, d).toISOString();
}

/** The LibraryFilter of `search` in the team `teamId`. */
export function toFilter(search, teamId) {
  const filter = {};
  if (search.scope === '') filter.teamId = teamId;
  if (search.scope === 'public') filter.includePublic = true;
  if (search.text) filter.text = search.text.slice(0, 200);
  for (const [key, field] of Object.entries(LIST_KEYS)) {
    if (search[key].length) filter[field] = search[key];
  }
  if (search.tag.length && search.all) filter.tagsMatch = 'ALL';
  if (search.collection) filter.collectionId = search.collection;
  if (search.from) filter.createdAfter = dayStart(search.from);
  if (search.to) filter.createdBefore = dayAfter(search.to);
  if (search.minDur !== null) filter.minDuration = search.minDur;
  if (search.maxDur !== null) filter.maxDuration = search.maxDur;
  if (search.lineage) filter.hasLineage = search.lineage === 'yes';
  if (search.fav) filter.favoritesOnly = true;
  return filter;
}

/** The LibrarySort of `search`: relevance by default when there are words to match. */
export function toSort(search) {
  const field = search.sort || (search.text ? 'RELEVANCE' : 'CREATED');
  return { field, direction: search.dir };
}

/** How many filters (not the text, sort or view) `search` sets. */
export function countFilters(search) {
  let count = Object.keys(LIST_KEYS).reduce((sum, key) => sum + search[key].length, 0);
  for (const key of ['collection', 'from', 'to', 'lineage', 'scope']) if (search[key]) count += 1;
  if (search.minDur !== null) count += 1;
  if (search.maxDur !== null) count += 1;
  if (search.fav) count += 1;
  return count;
}

/**
 * Writes `update` into the URL: a key set to null, '' or [] is removed, an array is
 * written as repeated keys. A new history entry unless `replace`, so Back undoes it.
 */
export function changeSearch(update, { replace = false } = {}) {
  const query = new URLSearchParams(location$.value.query);
  for (const [key, value] of Object.entries(update)) {
    query.delete(key);
    if (Array.isArray(value)) value.forEach((item) => query.append(key, item));
    else if (value !== null && value !== undefined && value !== '' && value !== false) {
      query.set(key, value === true ? '1' : String(value));
    }
  }
  const search = query.toString();
  const href = location$.value.path + (search ? `?${search}` : '');
  const now = location$.value.path + (location$.value.query.toString() ? `?${location$.value.query}` : '');
  if (href !== now) navigate(href, { replace });
}

/** Every filter key, to clear them all at once (text, sort and view stay). */
export const FILTER_KEYS = [
  ...Object.keys(LIST_KEYS), 'all', 'collection', 'from', 'to', 'minDur', 'maxDur', 'lineage', 'fav', 'scope',
];
