// The team's collections as drop targets: drag an asset (from the library grid, the
// collection page's picker, or another collection) onto one to add it there.
//
// A dragged asset carries `application/x-studio-asset` with JSON {id, name}; any page
// may make its tiles draggable with `setAssetDragData(event, asset)`. The panel lists
// every collection of the team the person may see; those they may only view are shown
// but take no drops. `onAdded({collectionId, item})` runs after a successful add (the
// collection page refreshes its items with it).
import { html, useState, useId } from './lib.js';
import { useQuery, mutate, describeError } from './api.js';
import { toast } from './ui.js';

/** The drag type of an asset: JSON {id, name}. */
export const ASSET_DRAG_TYPE = 'application/x-studio-asset';

export const ADD_TO_COLLECTION = `mutation AddToCollection($input: AddToCollectionInput!) {
  addToCollection(input: $input) {
    item { id position asset { id name } }
    collection { id name itemCount }
    userErrors { code field message }
  }
}`;

const PANEL_COLLECTIONS = `query PanelCollections($teamId: ID!) {
  collections(teamId: $teamId, first: 100) { totalCount nodes { id name itemCount viewerPermission } }
}`;

/** Puts `asset` ({id, name}) on a drag (dragstart handler): copy-only. */
export function setAssetDragData(event, asset) {
  event.dataTransfer.setData(ASSET_DRAG_TYPE, JSON.stringify({ id: asset.id, name: asset.name }));
  event.dataTransfer.setData('text/plain', asset.name);
  event.dataTransfer.effectAllowed = 'copyMove';
}

/** Whether a drag (dragenter/dragover event) carries an asset. */
export function carriesAsset(event) {
  return Array.from(event.dataTransfer?.types ?? []).includes(ASSET_DRAG_TYPE);
}

/** The dragged asset {id, name} of a drop event, or null if it carries none (or garbage). */
export function draggedAsset(event) {
  try {
    const asset = JSON.parse(event.dataTransfer.getData(ASSET_DRAG_TYPE) || 'null');
    return asset && typeof asset.id === 'string' ? { id: asset.id, name: String(asset.name ?? 'the asset') } : null;
  } catch {
    return null;
  }
}

export const mayEdit = (permission) => permission === 'EDIT' || permission === 'ADMIN';

/**
 * A sidebar of the team's collections, each a drop target for dragged assets.
 * `refreshKey`: a value that, when it changes, reads the list again (a collection made
 * elsewhere on the page). `currentId`: the collection shown beside it, if any (marked).
 */
export function CollectionsPanel({ teamId, onAdded, refreshKey, currentId }) {
  const list = useQuery(PANEL_COLLECTIONS, { teamId }, [teamId, refreshKey]);
  const [over, setOver] = useState(null);
  const [busy, setBusy] = useState(null);
  const headingId = useId();
  const hintId = useId();
  const collections = list.data?.collections.nodes ?? [];

  async function drop(event, collection) {
    event.preventDefault();
    setOver(null);
    const asset = draggedAsset(event);
    if (!asset) return;
    setBusy(collection.id);
    try {
      const payload = await mutate(ADD_TO_COLLECTION, { input: { collectionId: collection.id, assetId: asset.id } });
      list.setData((data) => data && {
        collections: {
          ...data.collections,
          nodes: data.collections.nodes.map((c) => (c.id === collection.id ? { ...c, itemCount: payload.collection?.itemCount ?? c.itemCount + 1 } : c)),
        },
      });
      toast(`Added “${asset.name}” to “${collection.name}”.`, 'success');
      onAdded?.({ collectionId: collection.id, item: payload.item });
    } catch (error) {
      const already = error.code === 'ALREADY_IN_COLLECTION';
      toast(already
        ? `“${asset.name}” is already in “${collection.name}”.`
        : `Could not add “${asset.name}” to “${collection.name}”: ${describeError(error)}`, 'error', 8000);
    } finally {
      setBusy(null);
    }
  }

  function target(collection) {
    const editable = mayEdit(collection.viewerPermission);
    const handlers = editable ? {
      onDragEnter: (e) => { if (carriesAsset(e)) { e.preventDefault(); setOver(collection.id); } },
      onDragOver: (e) => {
        if (!carriesAsset(e)) return;
        e.preventDefault();
        e.dataTransfer.dropEffect = 'copy';
        if (over !== collection.id) setOver(collection.id);
      },
      onDragLeave: (e) => { if (!e.currentTarget.contains(e.relatedTarget)) setOver(null); },
      onDrop: (e) => drop(e, collection),
    } : {};
    const classes = ['panel-target', over === collection.id && 'drop-over', !editable && 'read-only',
      collection.id === currentId && 'current'].filter(Boolean).join(' ');
    return html`<li key=${collection.id} class=${classes} data-collection-id=${collection.id}
        data-drop-target=${editable ? 'asset' : undefined} aria-busy=${busy === collection.id ? 'true' : undefined} ...${handlers}>
      <a href=${`/collections/${encodeURIComponent(collection.id)}`}
        aria-current=${collection.id === currentId ? 'page' : undefined}>${collection.name}</a>
      <span class="panel-count">${collection.itemCount === 1 ? '1 item' : `${collection.itemCount} items`}${editable ? '' : ' · view only'}</span>
    </li>`;
  }

  return html`<aside class="collections-panel" aria-labelledby=${headingId} aria-describedby=${hintId}>
    <h2 id=${headingId}>Collections</h2>
    <p class="hint" id=${hintId}>Drag an asset onto a collection to add it.</p>
    ${list.error && html`<p class="field-error" role="alert">${describeError(list.error)}
      <button type="button" class="link" onClick=${list.reload}>Try again</button></p>`}
    ${!list.data && !list.error && html`<p class="loading" role="status">Loading collections…</p>`}
    ${list.data && collections.length === 0 && html`<p class="empty-note">No collections yet. <a href="/collections">Make one</a>.</p>`}
    ${collections.length > 0 && html`<ul class="panel-list">${collections.map(target)}</ul>`}
  </aside>`;
}
