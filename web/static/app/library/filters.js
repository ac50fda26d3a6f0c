// The library's filter controls, built from `libraryFilters(teamId)`: every facet the
// API has (kinds, tags, categories, moods, scene types, models, creators, projects,
// share levels) as checkboxes with their counts, and the rest of LibraryFilter as
// fields (collection, dates, durations, lineage, favourites, scope). Each change goes
// into the URL (see query.js), which the results follow.
import { html, useState } from '../lib.js';
import { changeSearch, FILTER_KEYS } from './query.js';
import { enumLabel, formatDate } from './cards.js';

export const FACETS_QUERY = `query LibraryFacets($teamId: ID!, $includePublic: Boolean!) {
  libraryFilters(teamId: $teamId, includePublic: $includePublic) {
    totalCount
    kinds { value count } tags { value count } categories { value count } moods { value count }
    sceneTypes { value count } models { value count } creators { value label count }
    projects { value label count } shareLevels { value count }
    durationRange { min max } createdRange { earliest latest }
  }
  collections(teamId: $teamId, first: 100) { nodes { id name } }
}`;

/** [URL key, facet field, legend, how a value reads, what an ID without a label reads]. */
const GROUPS = [
  ['kind', 'kinds', 'Kind', enumLabel],
  ['tag', 'tags', 'Tags', (v) => v],
  ['category', 'categories', 'Category', (v) => v],
  ['mood', 'moods', 'Mood', (v) => v],
  ['scene', 'sceneTypes', 'Scene type', enumLabel],
  ['model', 'models', 'Model', (v) => v],
  ['creator', 'creators', 'Made by', null, 'Someone you cannot see'],
  ['project', 'projects', 'Project', null, 'A project you cannot see'],
  ['level', 'shareLevels', 'Who sees it', enumLabel],
];

const SHOWN_AT_FIRST = 8;

/** Checkboxes of one facet, with counts; values chosen but no longer counted stay shown. */
function FacetGroup({ urlKey, legend, values, chosen, label, unseen, children }) {
  const [all, setAll] = useState(false);
  const known = new Set(values.map((v) => v.value));
  const rows = [...values, ...chosen.filter((v) => !known.has(v)).map((value) => ({ value, count: 0 }))];
  if (rows.length === 0) return null;
  const shown = all ? rows : rows.slice(0, SHOWN_AT_FIRST);
  const toggle = (value, on) => {
    const next = on ? [...chosen, value] : chosen.filter((v) => v !== value);
    changeSearch({ [urlKey]: next });
  };
  return html`<fieldset class="facet" data-facet=${urlKey}>
    <legend>${legend}</legend>
    ${shown.map((row) => {
      const text = label ? label(row.value) : (row.label ?? unseen);
      return html`<label key=${row.value} class="facet-value">
        <input type="checkbox" name=${urlKey} value=${row.value} checked=${chosen.includes(row.value)}
          onChange=${(e) => toggle(row.value, e.currentTarget.checked)} />
        <span class="facet-text">${text}</span> <span class="facet-count">(${row.count})</span>
      </label>`;
    })}
    ${rows.length > SHOWN_AT_FIRST && html`<button type="button" class="link" aria-expanded=${all}
        onClick=${() => setAll(!all)}>${all ? 'Show fewer' : `Show all ${rows.length}`}</button>`}
    ${children}
  </fieldset>`;
}

function toDay(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/** A number field written to the URL when it is left or Enter is pressed. */
function NumberField({ id, label, value, urlKey, placeholder }) {
  const commit = (event) => {
    const text = event.currentTarget.value.trim();
    changeSearch({ [urlKey]: text === '' ? null : text });
  };
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <input id=${id} type="number" min="0" step="any" inputmode="decimal" placeholder=${placeholder}
      value=${value ?? ''} onChange=${commit} />
  </div>`;
}

/**
 * The filters of `search` (see query.js), from `facets` (libraryFilters) and the team's
 * `collections` ({id, name}[]).
 */
export function FilterPanel({ search, facets, collections, teamName }) {
  const empty = { kinds: [], tags: [], categories: [], moods: [], sceneTypes: [], models: [], creators: [], projects: [], shareLevels: [] };
  const f = facets ?? empty;
  const range = f.createdRange;
  const durations = f.durationRange;
  return html`<section class="library-filters" aria-labelledby="library-filters-title">
    <h2 id="library-filters-title" class="filters-title">Filters</h2>
    <div class="field">
      <label for="library-scope">Search in</label>
      <select id="library-scope" value=${search.scope} onChange=${(e) => changeSearch({ scope: e.currentTarget.value })}>
        <option value="">${teamName ? `${teamName}'s library` : 'This team’s library'}</option>
        <option value="all">All my teams and what is shared with me</option>
        <option value="public">…and public assets of other teams</option>
      </select>
    </div>
    ${facets && html`<p class="hint">${f.totalCount} ${f.totalCount === 1 ? 'asset' : 'assets'} in ${teamName ?? 'this team'}; the counts are of each value alone.</p>`}
    ${GROUPS.map(([urlKey, field, legend, label, unseen]) => html`<${FacetGroup} key=${urlKey} urlKey=${urlKey}
        legend=${legend} values=${f[field] ?? []} chosen=${search[urlKey]} label=${label} unseen=${unseen}>
      ${urlKey === 'tag' && search.tag.length > 1 && html`<label class="facet-value facet-option">
        <input type="checkbox" checked=${search.all} onChange=${(e) => changeSearch({ all: e.currentTarget.checked })} />
        <span>Only assets with all chosen tags</span>
      </label>`}
    </${FacetGroup}>`)}
    ${collections?.length > 0 && html`<div class="field">
      <label for="library-collection">In collection</label>
      <select id="library-collection" value=${search.collection} onChange=${(e) => changeSearch({ collection: e.currentTarget.value })}>
        <option value="">Any collection or none</option>
        ${collections.map((c) => html`<option key=${c.id} value=${c.id}>${c.name}</option>`)}
        ${search.collection && !collections.some((c) => c.id === search.collection) && html`<option value=${search.collection}>A collection not listed</option>`}
      </select>
    </div>`}
    <fieldset class="facet">
      <legend>Made</legend>
      ${range && html`<p class="hint">From ${formatDate(range.earliest)} to ${formatDate(range.latest)}</p>`}
      <div class="field">
        <label for="library-from">From (day)</label>
        <input id="library-from" type="date" value=${search.from} min=${toDay(range?.earliest)} max=${toDay(range?.latest)}
          onChange=${(e) => changeSearch({ from: e.currentTarget.value })} />
      </div>
      <div class="field">
        <label for="library-to">To (day, included)</label>
        <input id="library-to" type="date" value=${search.to} min=${toDay(range?.earliest)} max=${toDay(range?.latest)}
          onChange=${(e) => changeSearch({ to: e.currentTarget.value })} />
      </div>
    </fieldset>
    <fieldset class="facet">
      <legend>Duration (seconds)</legend>
      <p class="hint">${durations ? `Clips run ${durations.min} to ${durations.max} s. ` : ''}A duration keeps clips only.</p>
      <${NumberField} id="library-min-duration" label="At least" urlKey="minDur" value=${search.minDur}
        placeholder=${durations ? String(durations.min) : ''} />
      <${NumberField} id="library-max-duration" label="At most" urlKey="maxDur" value=${search.maxDur}
        placeholder=${durations ? String(durations.max) : ''} />
    </fieldset>
    <div class="field">
      <label for="library-lineage">Lineage</label>
      <select id="library-lineage" value=${search.lineage} onChange=${(e) => changeSearch({ lineage: e.currentTarget.value })}>
        <option value="">With or without</option>
        <option value="yes">Has a parent or a child</option>
        <option value="no">Stands alone</option>
      </select>
    </div>
    <label class="facet-value facet-option">
      <input type="checkbox" checked=${search.fav} onChange=${(e) => changeSearch({ fav: e.currentTarget.checked })} />
      <span>Starred images only</span>
    </label>
  </section>`;
}

/** Removable chips of the filters in use, and a button clearing them all. */
export function ActiveFilters({ search, facets, collections }) {
  const chips = [];
  for (const [urlKey, field, legend, label, unseen] of GROUPS) {
    for (const value of search[urlKey]) {
      const named = label ? label(value) : (facets?.[field]?.find((v) => v.value === value)?.label ?? unseen);
      chips.push([`${urlKey}:${value}`, `${legend}: ${named}`, { [urlKey]: search[urlKey].filter((v) => v !== value) }]);
    }
  }
  if (search.tag.length > 1 && search.all) chips.push(['all', 'All chosen tags', { all: null }]);
  if (search.collection) {
    const name = collections?.find((c) => c.id === search.collection)?.name ?? 'a collection';
    chips.push(['collection', `In ${name}`, { collection: null }]);
  }
  if (search.from) chips.push(['from', `From ${search.from}`, { from: null }]);
  if (search.to) chips.push(['to', `To ${search.to}`, { to: null }]);
  if (search.minDur !== null) chips.push(['minDur', `At least ${search.minDur} s`, { minDur: null }]);
  if (search.maxDur !== null) chips.push(['maxDur', `At most ${search.maxDur} s`, { maxDur: null }]);
  if (search.lineage) chips.push(['lineage', search.lineage === 'yes' ? 'With lineage' : 'Without lineage', { lineage: null }]);
  if (search.fav) chips.push(['fav', 'Starred only', { fav: null }]);
  if (search.scope) chips.push(['scope', search.scope === 'all' ? 'All my teams' : 'With public assets', { scope: null }]);
  if (chips.length === 0) return null;
  const clearAll = Object.fromEntries(FILTER_KEYS.map((key) => [key, null]));
  return html`<ul class="chips" aria-label="Filters in use">
    ${chips.map(([key, text, update]) => html`<li key=${key}>
      <button type="button" class="chip" aria-label=${`Remove filter ${text}`} onClick=${() => changeSearch(update)}>
        ${text} <span aria-hidden="true">×</span>
      </button>
    </li>`)}
    ${chips.length > 1 && html`<li><button type="button" class="link" onClick=${() => changeSearch(clearAll)}>Clear all filters</button></li>`}
  </ul>`;
}
