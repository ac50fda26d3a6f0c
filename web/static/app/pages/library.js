// The library (/library): search the assets you may see with every filter and sort
// the `library` query has, the filters built from `libraryFilters` with their counts,
// the search kept in the URL (a deep link; Back restores the one before), the results
// in a virtualised grid or list, a keyset page at a time, kept live by `libraryEvents`.
// Cards link to /library/assets/<id> and can be dragged onto a collection: the panel
// that takes them (collections-panel.js) is drawn beside the grid (#library-aside).
import { html, useEffect, useMemo, useRef, useState } from '../lib.js';
import { useQuery } from '../api.js';
import { location$ } from '../router.js';
import { team } from '../viewer.js';
import { Empty, ErrorBox, Loading } from '../ui.js';
import { changeSearch, countFilters, parseSearch, SORT_FIELDS, toFilter, toSort } from '../library/query.js';
import { ActiveFilters, FACETS_QUERY, FilterPanel } from '../library/filters.js';
import { AssetGrid } from '../library/cards.js';
import { useLibrarySearch } from '../library/results.js';
import { CollectionsPanel } from '../collections-panel.js';

const TEXT_DELAY_MS = 300;
/** How each sort reads [descending, ascending]. */
const DIRECTIONS = {
  RELEVANCE: ['Best match first', 'Weakest match first'],
  CREATED: ['Newest first', 'Oldest first'],
  NAME: ['Z to A', 'A to Z'],
  DURATION: ['Longest first', 'Shortest first'],
  VIEWS: ['Most viewed first', 'Least viewed first'],
};

/** The words to search for: typed freely, written to the URL once typing pauses. */
function TextSearch({ text }) {
  const [value, setValue] = useState(text);
  const timer = useRef(null);
  // Back, Forward or a cleared search changed the URL: show its words.
  useEffect(() => {
    clearTimeout(timer.current);
    setValue(text);
  }, [text]);
  useEffect(() => () => clearTimeout(timer.current), []);
  const onInput = (event) => {
    const next = event.currentTarget.value;
    setValue(next);
    clearTimeout(timer.current);
    timer.current = setTimeout(() => changeSearch({ q: next.trim() }), TEXT_DELAY_MS);
  };
  const onSubmit = (event) => {
    event.preventDefault();
    clearTimeout(timer.current);
    changeSearch({ q: value.trim() });
  };
  return html`<form class="library-text" role="search" aria-label="Library" onSubmit=${onSubmit}>
    <label for="library-text">Search the library</label>
    <input id="library-text" type="search" value=${value} onInput=${onInput} maxlength="200"
      placeholder="Words in names, descriptions, prompts and tags" autocomplete="off" />
  </form>`;
}

function SortControls({ search }) {
  const field = search.sort || (search.text ? 'RELEVANCE' : 'CREATED');
  return html`<div class="library-sort">
    <label for="library-sort">Sort by</label>
    <select id="library-sort" value=${field} onChange=${(e) => changeSearch({ sort: e.currentTarget.value })}>
      ${SORT_FIELDS.filter(([value]) => value !== 'RELEVANCE' || search.text).map(([value, label]) => html`<option key=${value} value=${value}>${label}</option>`)}
    </select>
    <label for="library-direction" class="visually-hidden">Order</label>
    <select id="library-direction" value=${search.dir} onChange=${(e) => changeSearch({ dir: e.currentTarget.value === 'ASC' ? 'ASC' : null })}>
      <option value="DESC">${DIRECTIONS[field][0]}</option>
      <option value="ASC">${DIRECTIONS[field][1]}</option>
    </select>
  </div>`;
}

function ViewToggle({ view }) {
  return html`<div class="view-toggle" role="group" aria-label="View">
    <button type="button" aria-pressed=${view === 'grid'} onClick=${() => changeSearch({ view: null })}>Grid</button>
    <button type="button" aria-pressed=${view === 'list'} onClick=${() => changeSearch({ view: 'list' })}>List</button>
  </div>`;
}

function Results({ search, results, filtered }) {
  if (results.error && !results.loaded) {
    return html`<${ErrorBox} title="The search failed" error=${results.error} onRetry=${results.reload} />`;
  }
  if (!results.loaded) return html`<${Loading} label="Searching…" />`;
  if (results.items.length === 0) {
    return html`<${Empty}>${filtered
      ? html`<p>Nothing matches this search.</p><p>Try fewer words or remove a filter.</p>`
      : html`<p>The library is empty.</p><p>Every image and clip your projects make lands here. <a href="/projects">Go to your projects</a>.</p>`}</${Empty}>`;
  }
  return html`
    <${AssetGrid} assets=${results.items} view=${search.view} onEnd=${results.loadMore}
      label=${`Search results, ${results.total} ${results.total === 1 ? 'asset' : 'assets'}`} />
    ${results.error && html`<${ErrorBox} title="More results could not load" error=${results.error} onRetry=${results.retryMore} />`}
    ${results.loading && html`<${Loading} label="Loading more…" />`}`;
}

export default function LibraryPage() {
  const search = parseSearch(location$.value.query);
  const teamId = team.value?.id;
  const filter = useMemo(() => toFilter(search, teamId), [location$.value.query.toString(), teamId]); // eslint-disable-line
  const sort = toSort(search);
  const facets = useQuery(FACETS_QUERY, { teamId, includePublic: search.scope === 'public' }, [teamId, search.scope]);
  const recount = useRef(null);
  useEffect(() => () => clearTimeout(recount.current), []);
  const results = useLibrarySearch({
    filter,
    sort,
    teamId,
    // Counts change with the library: read them again once a burst of events is over.
    onChange: () => {
      clearTimeout(recount.current);
      recount.current = setTimeout(() => facets.reload(), 600);
    },
  });
  const filters = countFilters(search);
  // On a narrow screen the filters fold away behind a button (CSS shows it there only).
  const [showFilters, setShowFilters] = useState(false);
  // #library-aside: the collections panel cards are dropped on (it brings its own
  // landmark and heading).
  const collections = facets.data?.collections.nodes ?? [];
  return html`<section class="page library-page">
    <h1>Library</h1>
    <div class="library-bar">
      <${TextSearch} text=${search.text} />
      <${SortControls} search=${search} />
      <${ViewToggle} view=${search.view} />
      <button type="button" class="filters-toggle" aria-expanded=${showFilters} aria-controls="library-side"
        onClick=${() => setShowFilters(!showFilters)}>${showFilters ? 'Hide filters' : 'Show filters'}${filters ? ` (${filters})` : ''}</button>
    </div>
    <div class="library-layout">
      <div class=${`library-side${showFilters ? '' : ' library-side-closed'}`} id="library-side">
        ${facets.error && html`<${ErrorBox} title="The filters could not load" error=${facets.error} onRetry=${facets.reload} />`}
        <${FilterPanel} search=${search} facets=${facets.data?.libraryFilters} collections=${collections}
          teamName=${team.value?.name} />
      </div>
      <div class="library-results">
        <p class="library-count" role="status" aria-live="polite">${results.loaded
          ? `${results.total} ${results.total === 1 ? 'asset' : 'assets'}${search.text ? ` for “${search.text}”` : ''}${filters ? `, ${filters} ${filters === 1 ? 'filter' : 'filters'} in use` : ''}`
          : ''}</p>
        <${ActiveFilters} search=${search} facets=${facets.data?.libraryFilters} collections=${collections} />
        <${Results} search=${search} results=${results} filtered=${Boolean(filters || search.text)} />
      </div>
      <div id="library-aside" class="library-aside">${teamId && html`<${CollectionsPanel} teamId=${teamId} />`}</div>
    </div>
  </section>`;
}
