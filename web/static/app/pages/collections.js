// Collections: the team's list (/collections) with create, edit and delete, and one
// collection (/collections/:collectionId) with its items in order. Items are reordered
// by drag and drop or by keyboard (pick up with Space, move with the arrows, drop with
// Space), removed, or made the cover; assets come in by drag and drop from the
// "Add from library" picker (or its Add buttons) and from the collections panel.
// Collections have no feed of their own: both views follow the team's library feed,
// so items whose assets change or go away are read again.
import { html, useState, useEffect, useRef, useCallback, useId } from '../lib.js';
import { gql, mutate, useQuery, describeError } from '../api.js';
import { useFeed } from '../live.js';
import { navigate } from '../router.js';
import { team } from '../viewer.js';
import { ConfirmDialog, Empty, ErrorBox, Loading, Thumb, ago, toast } from '../ui.js';
import {
  CollectionDialog, COLLECTION_FIELDS, CREATE_COLLECTION, UPDATE_COLLECTION, DELETE_COLLECTION,
  collectionInput, typeLabel, visibilityLabel,
} from '../collection-form.js';
import {
  CollectionsPanel, ADD_TO_COLLECTION, mayEdit, setAssetDragData,
} from '../collections-panel.js';
import { CollectionItems } from '../collection-items.js';

const COLLECTIONS = `query Collections($teamId: ID!, $after: String) {
  collections(teamId: $teamId, first: 50, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    nodes { ${COLLECTION_FIELDS} }
  }
}`;

const ITEM_FIELDS = 'id position notes asset { id name kind status thumbnailUrl }';
const COLLECTION = `query Collection($id: ID!, $after: String) {
  collection(id: $id) {
    ${COLLECTION_FIELDS} totalDuration
    items(first: 100, after: $after) { totalCount pageInfo { hasNextPage endCursor } nodes { ${ITEM_FIELDS} } }
  }
}`;

export const LIBRARY_EVENTS = `subscription CollectionsLibrary($teamId: ID!, $after: String) {
  libraryEvents(teamId: $teamId, after: $after) { cursor kind assetId changes }
}`;

const MOST_ITEMS = 1000; // what reorderCollection takes at once

export default function CollectionsPage({ collectionId }) {
  return collectionId ? html`<${CollectionView} key=${collectionId} collectionId=${collectionId} />` : html`<${CollectionList} />`;
}

// -- the list ---------------------------------------------------------------------------------

function CollectionList() {
  const teamId = team.value?.id;
  const canWrite = team.value && team.value.viewerRole !== 'VIEWER';
  const list = useQuery(COLLECTIONS, { teamId, after: null }, [teamId]);
  const [more, setMore] = useState({ nodes: [], page: null, busy: false, error: null });
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState(null);
  const [deleting, setDeleting] = useState(null);
  useEffect(() => setMore({ nodes: [], page: null, busy: false, error: null }), [list.data]);
  useFeed(LIBRARY_EVENTS, { teamId }, {
    // Covers and counts follow the assets: read the list again when one changes or goes.
    enabled: Boolean(teamId),
    onEvent: (event) => { if (event.kind === 'ASSET_DELETED' || event.kind === 'ASSET_UPDATED') list.reload(); },
  }, [teamId]);
  const first = list.data?.collections;
  const nodes = [...(first?.nodes ?? []), ...more.nodes];
  const page = more.page ?? first?.pageInfo;

  async function loadMore() {
    setMore((m) => ({ ...m, busy: true, error: null }));
    try {
      const data = await gql(COLLECTIONS, { teamId, after: page.endCursor });
      setMore((m) => ({ nodes: [...m.nodes, ...data.collections.nodes], page: data.collections.pageInfo, busy: false, error: null }));
    } catch (error) {
      setMore((m) => ({ ...m, busy: false, error }));
    }
  }

  async function create(form) {
    const payload = await mutate(CREATE_COLLECTION, { input: collectionInput(form, null, teamId) });
    setCreating(false);
    toast(`Collection “${payload.collection.name}” made. Add assets to it from the library.`, 'success');
    navigate(`/collections/${encodeURIComponent(payload.collection.id)}`);
  }

  async function save(form) {
    const input = collectionInput(form, editing, teamId);
    if (Object.keys(input).length > 1) await mutate(UPDATE_COLLECTION, { input });
    setEditing(null);
    list.reload();
  }

  return html`<section class="page collections-page">
    <div class="page-head">
      <h1>Collections</h1>
      ${canWrite && html`<button type="button" class="primary" onClick=${() => setCreating(true)}>New collection</button>`}
    </div>
    <p class="hint">Ordered sets of ${team.value?.name ?? 'the team'}’s assets: campaigns, series, character arcs, brand kits, universes.</p>
    ${list.error && html`<${ErrorBox} error=${list.error} onRetry=${list.reload} />`}
    ${!list.data && !list.error && html`<${Loading} />`}
    ${first && nodes.length === 0 && html`<${Empty}>No collections yet.${canWrite ? ' Make one with “New collection”.' : ''}</${Empty}>`}
    ${nodes.length > 0 && html`<p class="count" aria-live="polite">${first.totalCount === 1 ? '1 collection' : `${first.totalCount} collections`}</p>`}
    <ul class="collection-cards">
      ${nodes.map((c) => html`<li key=${c.id} class="collection-card" data-collection-id=${c.id}>
        <${Thumb} src=${c.coverImage?.thumbnailUrl} alt=${c.coverImage ? `Cover: ${c.coverImage.name}` : 'No cover yet'} width="320" height="180" />
        <h2><a href=${`/collections/${encodeURIComponent(c.id)}`}>${c.name}</a></h2>
        <p class="meta">${typeLabel(c.type)} · ${c.itemCount === 1 ? '1 item' : `${c.itemCount} items`} · ${visibilityLabel(c.shareLevel)} · changed ${ago(c.updatedAt)}</p>
        ${c.description && html`<p class="description">${c.description}</p>`}
        <div class="card-actions">
          ${mayEdit(c.viewerPermission) && html`<button type="button" aria-label=${`Edit ${c.name}`} onClick=${() => setEditing(c)}>Edit</button>`}
          ${c.viewerPermission === 'ADMIN' && html`<button type="button" aria-label=${`Delete ${c.name}`} onClick=${() => setDeleting(c)}>Delete</button>`}
        </div>
      </li>`)}
    </ul>
    ${more.error && html`<${ErrorBox} error=${more.error} onRetry=${loadMore} />`}
    ${page?.hasNextPage && html`<button type="button" onClick=${loadMore} disabled=${more.busy}>${more.busy ? 'Loading…' : 'Show more collections'}</button>`}
    <${CollectionDialog} open=${creating} onClose=${() => setCreating(false)} onSubmit=${create} />
    <${CollectionDialog} open=${Boolean(editing)} collection=${editing} onClose=${() => setEditing(null)} onSubmit=${save}
      mayChangeLevel=${editing?.viewerPermission === 'ADMIN'} />
    <${DeleteCollection} collection=${deleting} onClose=${() => setDeleting(null)} onDeleted=${() => { setDeleting(null); list.reload(); }} />
  </section>`;
}

function DeleteCollection({ collection, onClose, onDeleted }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  useEffect(() => setError(null), [collection?.id]);
  async function confirm() {
    setBusy(true);
    try {
      await mutate(DELETE_COLLECTION, { input: { id: collection.id } });
      toast(`Collection “${collection.name}” deleted; its assets are still in the library.`, 'success');
      onDeleted();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  }
  const count = collection?.itemCount ?? 0;
  return html`<${ConfirmDialog} open=${Boolean(collection)} onClose=${onClose} onConfirm=${confirm} busy=${busy} error=${error}
    title=${collection ? `Delete “${collection.name}”?` : 'Delete'} confirmLabel="Delete collection"
    consequences=${collection && html`<p>The collection, its order, notes and cover go for everyone in the team.
      Its ${count === 1 ? 'asset stays' : `${count} assets stay`} in the library; nothing else is deleted.</p>`} />`;
}

// -- one collection ---------------------------------------------------------------------------

/** The collection with every item you may see (pages of 100, up to 1000), or null. */
function useCollection(collectionId) {
  const [state, setState] = useState({ collection: undefined, error: null });
  const generation = useRef(0);
  const load = useCallback(async () => {
    const mine = ++generation.current;
    try {
      const data = await gql(COLLECTION, { id: collectionId, after: null });
      let collection = data.collection;
      if (collection) {
        const items = [...collection.items.nodes];
        let page = collection.items.pageInfo;
        while (page.hasNextPage && items.length < MOST_ITEMS) {
          const next = await gql(COLLECTION, { id: collectionId, after: page.endCursor });
          if (!next.collection) break;
          items.push(...next.collection.items.nodes);
          page = next.collection.items.pageInfo;
        }
        collection = { ...collection, items };
      }
      if (mine === generation.current) setState({ collection, error: null });
    } catch (error) {
      if (mine === generation.current) setState((s) => ({ ...s, error }));
    }
  }, [collectionId]);
  useEffect(() => {
    load();
    return () => { generation.current++; };
  }, [load]);
  const setItems = useCallback((items) => setState((s) => ({ ...s, collection: s.collection && { ...s.collection, items } })), []);
  const setCollection = useCallback((update) => setState((s) => ({ ...s, collection: { ...s.collection, ...update } })), []);
  return { ...state, reload: load, setItems, setCollection };
}

function CollectionView({ collectionId }) {
  const { collection, error, reload, setItems, setCollection } = useCollection(collectionId);
  const [editing, setEditing] = useState(false);
  const [deleting, setDeleting] = useState(null);
  const [panelKey, setPanelKey] = useState(0);
  const [libraryTick, setLibraryTick] = useState(0);
  const teamId = collection?.team?.id ?? null;
  const pending = useRef(null);
  useFeed(LIBRARY_EVENTS, { teamId }, {
    enabled: Boolean(teamId),
    // A burst of changes (six new images) is read once: the items, and the picker's results.
    onEvent: (event) => {
      if (event.kind === 'SNAPSHOT') return;
      clearTimeout(pending.current);
      pending.current = setTimeout(() => { reload(); setLibraryTick((t) => t + 1); }, 250);
    },
  }, [teamId]);
  useEffect(() => () => clearTimeout(pending.current), []);

  if (error && collection === undefined) return html`<${ErrorBox} error=${error} onRetry=${reload} />`;
  if (collection === undefined) return html`<${Loading} />`;
  if (!collection) {
    return html`<section class="page"><h1>Collection not found</h1>
      <p>It was deleted, or you may not see it. <a href="/collections">Back to collections</a></p></section>`;
  }
  const editable = mayEdit(collection.viewerPermission);
  const member = Boolean(collection.team);

  async function save(form) {
    const input = collectionInput(form, collection, teamId);
    if (Object.keys(input).length > 1) {
      const payload = await mutate(UPDATE_COLLECTION, { input });
      setCollection(payload.collection);
      setPanelKey((k) => k + 1);
    }
    setEditing(false);
  }

  return html`<section class="page collection-page" data-collection-id=${collection.id}>
    <p class="crumbs"><a href="/collections">Collections</a>${collection.team ? ` / ${collection.team.name}` : ''}</p>
    <div class="page-head">
      <h1>${collection.name}</h1>
      ${editable && html`<button type="button" onClick=${() => setEditing(true)}>Edit details</button>`}
      ${collection.viewerPermission === 'ADMIN' && html`<button type="button" onClick=${() => setDeleting(collection)}>Delete collection</button>`}
    </div>
    <div class="collection-summary">
      <figure class="cover">
        <${Thumb} src=${collection.coverImage?.thumbnailUrl} alt=${collection.coverImage ? `Cover: ${collection.coverImage.name}` : 'No cover yet'} width="240" height="135" />
        <figcaption>${collection.coverImage ? html`Cover: <span data-testid="cover-name">${collection.coverImage.name}</span>` : 'No cover yet: choose “Make cover” on an item.'}</figcaption>
      </figure>
      <div>
        <p class="meta">${typeLabel(collection.type)} · ${visibilityLabel(collection.shareLevel)} ·
          ${collection.itemCount === 1 ? ' 1 item' : ` ${collection.itemCount} items`}${collection.totalDuration ? ` · ${Math.round(collection.totalDuration)} s of video` : ''}</p>
        ${collection.description && html`<p class="description">${collection.description}</p>`}
        ${collection.tags.length > 0 && html`<ul class="tags" aria-label="Tags">${collection.tags.map((t) => html`<li key=${t}>${t}</li>`)}</ul>`}
        ${error && html`<${ErrorBox} error=${error} onRetry=${reload} />`}
      </div>
    </div>
    <div class=${editable && member ? 'collection-layout' : ''}>
      <${CollectionItems} collection=${collection} editable=${editable} setItems=${setItems}
        setCollection=${setCollection} reload=${reload} />
      ${editable && member && html`<div class="collection-side">
        <${CollectionsPanel} teamId=${teamId} currentId=${collection.id} refreshKey=${`${panelKey}:${collection.itemCount}`}
          onAdded=${({ collectionId: into }) => { if (into === collection.id) reload(); }} />
        <${LibraryPicker} teamId=${teamId} collection=${collection} onAdded=${reload} refreshKey=${libraryTick} />
      </div>`}
    </div>
    <${CollectionDialog} open=${editing} collection=${collection} onClose=${() => setEditing(false)} onSubmit=${save}
      mayChangeLevel=${collection.viewerPermission === 'ADMIN'} />
    <${DeleteCollection} collection=${deleting} onClose=${() => setDeleting(null)}
      onDeleted=${() => navigate('/collections', { replace: true })} />
  </section>`;
}

// -- the picker -------------------------------------------------------------------------------

const PICKER = `query Picker($filter: LibraryFilter!) {
  library(filter: $filter, first: 24, sort: {field: CREATED, direction: DESC}) {
    totalCount nodes { id name kind status thumbnailUrl }
  }
}`;

/** A small search of the team's library whose results drag into the collection (or Add). */
function LibraryPicker({ teamId, collection, onAdded, refreshKey }) {
  const [text, setText] = useState('');
  const [query, setQuery] = useState('');
  const headingId = useId();
  const searchId = useId();
  useEffect(() => {
    const timer = setTimeout(() => setQuery(text.trim()), 300);
    return () => clearTimeout(timer);
  }, [text]);
  const results = useQuery(PICKER, { filter: { teamId, text: query || null } }, [teamId, query, refreshKey]);
  const inCollection = new Set(collection.items.map((item) => item.asset.id));
  const found = results.data?.library;

  async function add(asset) {
    try {
      await mutate(ADD_TO_COLLECTION, { input: { collectionId: collection.id, assetId: asset.id } });
      toast(`Added “${asset.name}” to “${collection.name}”.`, 'success');
      onAdded();
    } catch (error) {
      toast(`Could not add “${asset.name}”: ${describeError(error)}`, 'error', 8000);
    }
  }

  return html`<section class="library-picker" aria-labelledby=${headingId}>
    <h2 id=${headingId}>Add from library</h2>
    <label for=${searchId}>Search the library</label>
    <input id=${searchId} type="search" value=${text} onInput=${(e) => setText(e.currentTarget.value)}
      placeholder="Name, tag, prompt…" />
    <p class="hint">Drag an asset into the collection, at the place you want, or use its Add button.</p>
    ${results.error && html`<${ErrorBox} error=${results.error} onRetry=${results.reload} />`}
    ${!results.data && !results.error && html`<${Loading} label="Searching…" />`}
    ${found && html`<p class="count" role="status">${found.totalCount === 0 ? 'Nothing found.' : found.totalCount > found.nodes.length
      ? `${found.nodes.length} of ${found.totalCount} shown; search to narrow.` : `${found.totalCount} found.`}</p>`}
    <ul class="picker-results" aria-label="Library results">
      ${(found?.nodes ?? []).map((asset) => {
        const there = inCollection.has(asset.id);
        return html`<li key=${asset.id} class="picker-item" draggable=${there ? 'false' : 'true'} data-asset-id=${asset.id}
            onDragStart=${(e) => setAssetDragData(e, asset)}>
          <${Thumb} src=${asset.thumbnailUrl} alt="" width="64" height="36" />
          <span class="picker-name">${asset.name}</span>
          ${there
            ? html`<span class="badge">In collection</span>`
            : html`<button type="button" aria-label=${`Add ${asset.name}`} onClick=${() => add(asset)}>Add</button>`}
        </li>`;
      })}
    </ul>
  </section>`;
}
