// A collection's items in order, for the collection page: reorder by drag and drop or by
// keyboard, remove, make the cover, and take in assets dropped from elsewhere.
//
// Keyboard: each item has a "Move" handle; Space or Enter picks the item up, the arrow
// keys (Home, End) move it, Space or Enter drops it there (saved then), Escape puts it
// back. Every step is announced in a live region. Dragging with the mouse saves on drop.
// Orders are shown at once and put back, with the reason, if the server refuses them.
import { html, useState, useRef, useId, useLayoutEffect } from './lib.js';
import { mutate, describeError } from './api.js';
import { Empty, ErrorBox, Thumb, toast } from './ui.js';
import { UPDATE_COLLECTION } from './collection-form.js';
import {
  ADD_TO_COLLECTION, carriesAsset, draggedAsset, setAssetDragData,
} from './collections-panel.js';

/** An item dragged within its collection: the item's ID. */
export const ITEM_DRAG_TYPE = 'application/x-studio-collection-item';

const REORDER = `mutation ReorderCollection($input: ReorderCollectionInput!) {
  reorderCollection(input: $input) { collection { id updatedAt } userErrors { code field message } }
}`;

const REMOVE = `mutation RemoveFromCollection($input: RemoveFromCollectionInput!) {
  removeFromCollection(input: $input) { removedItemId collection { id itemCount } userErrors { code field message } }
}`;

/** `list` with the element at `from` moved to index `to`. */
export function moved(list, from, to) {
  const next = list.slice();
  const [item] = next.splice(from, 1);
  next.splice(to, 0, item);
  return next;
}

/**
 * The items in a new order with the positions the server will give them: items you
 * cannot see keep their places, so the visible ones share out the same positions.
 */
function renumbered(items) {
  const positions = items.map((item) => item.position).sort((a, b) => a - b);
  return items.map((item, i) => ({ ...item, position: positions[i] }));
}

const sameOrder = (a, b) => a.length === b.length && a.every((item, i) => item.id === b[i].id);

export function CollectionItems({ collection, editable, setItems, setCollection, reload }) {
  const items = collection.items;
  const [grabbed, setGrabbed] = useState(null); // {id, original} while moving by keyboard
  const [dropAt, setDropAt] = useState(null); // insertion index shown while dragging over
  const [draggingId, setDraggingId] = useState(null);
  const [message, setMessage] = useState('');
  const [error, setError] = useState(null);
  const handles = useRef(new Map());
  const latest = useRef({});
  latest.current = { items, grabbed };
  const instructionsId = useId();
  const headingId = useId();
  const coverId = collection.coverImage?.id;
  const announce = (text) => setMessage(text);

  // While an item is moved by keyboard (and once it is dropped or put back), its handle
  // keeps the focus as the list redraws: moving a focused element in the DOM blurs it.
  const keepFocus = useRef(null);
  useLayoutEffect(() => {
    const id = grabbed?.id ?? keepFocus.current;
    keepFocus.current = null;
    const handle = id && handles.current.get(id);
    if (handle && document.activeElement !== handle) handle.focus();
  }, [items, grabbed]);

  async function saveOrder(next, original, done) {
    setError(null);
    setItems(renumbered(next));
    announce(done);
    try {
      await mutate(REORDER, { input: { collectionId: collection.id, itemIds: next.map((item) => item.id) } });
    } catch (caught) {
      setItems(original);
      setError(caught);
      announce(`The new order was not saved: ${describeError(caught)} The items are back in their old order.`);
    }
  }

  async function addAt(asset, index) {
    setError(null);
    const position = index < items.length ? items[index].position : null;
    try {
      await mutate(ADD_TO_COLLECTION, { input: { collectionId: collection.id, assetId: asset.id, position } });
      announce(`Added ${asset.name} at position ${Math.min(index, items.length) + 1}.`);
      toast(`Added “${asset.name}” to “${collection.name}”.`, 'success');
      reload();
    } catch (caught) {
      const already = caught.code === 'ALREADY_IN_COLLECTION';
      const text = already ? `“${asset.name}” is already in this collection; drag it within the list to move it.`
        : `Could not add “${asset.name}”: ${describeError(caught)}`;
      announce(text);
      toast(text, 'error', 8000);
    }
  }

  async function remove(item) {
    setError(null);
    try {
      const payload = await mutate(REMOVE, { input: { collectionId: collection.id, assetId: item.asset.id } });
      setItems(items.filter((other) => other.id !== item.id));
      setCollection({ itemCount: payload.collection?.itemCount ?? collection.itemCount - 1 });
      announce(`Removed ${item.asset.name}. It is still in the library.`);
      toast(`Removed “${item.asset.name}” from “${collection.name}”; it is still in the library.`, 'success');
      reload();
    } catch (caught) {
      setError(caught);
    }
  }

  async function makeCover(asset) {
    setError(null);
    try {
      const payload = await mutate(UPDATE_COLLECTION, { input: { id: collection.id, coverAssetId: asset ? asset.id : null } });
      setCollection({ coverImage: payload.collection.coverImage });
      announce(asset ? `${asset.name} is the cover now.` : 'The collection has no cover now.');
    } catch (caught) {
      setError(caught);
    }
  }

  // -- keyboard ---------------------------------------------------------------------------

  function drop() {
    const { items: now, grabbed: held } = latest.current;
    if (!held) return;
    if (document.activeElement === handles.current.get(held.id)) keepFocus.current = held.id;
    setGrabbed(null);
    const index = now.findIndex((item) => item.id === held.id);
    const name = now[index]?.asset.name ?? 'The item';
    if (sameOrder(now, held.original)) {
      announce(`${name} dropped, still at position ${index + 1} of ${now.length}.`);
      return;
    }
    saveOrder(now, held.original, `${name} dropped at position ${index + 1} of ${now.length}.`);
  }

  function toggle(item) {
    if (grabbed) {
      drop();
      return;
    }
    const index = items.findIndex((other) => other.id === item.id);
    setGrabbed({ id: item.id, original: items });
    announce(`Picked up ${item.asset.name}, position ${index + 1} of ${items.length}. `
      + 'Use the up and down arrow keys to move it, Space to drop it, Escape to cancel.');
  }

  function onHandleKey(event, item) {
    if (event.key === ' ' || event.key === 'Enter') {
      event.preventDefault();
      toggle(item);
      return;
    }
    if (!grabbed || grabbed.id !== item.id) return;
    const index = items.findIndex((other) => other.id === item.id);
    const last = items.length - 1;
    const to = { ArrowUp: index - 1, ArrowDown: index + 1, Home: 0, End: last }[event.key];
    if (to !== undefined) {
      event.preventDefault();
      const target = Math.max(0, Math.min(last, to));
      if (target === index) {
        announce(`${item.asset.name} is already ${target === 0 ? 'first' : 'last'}.`);
        return;
      }
      setItems(moved(items, index, target));
      announce(`${item.asset.name}: position ${target + 1} of ${items.length}.`);
    } else if (event.key === 'Escape') {
      event.preventDefault();
      keepFocus.current = item.id;
      setItems(grabbed.original);
      setGrabbed(null);
      const back = grabbed.original.findIndex((other) => other.id === item.id);
      announce(`Move cancelled. ${item.asset.name} is back at position ${back + 1}.`);
    }
  }

  function onHandleBlur() {
    // Leaving a picked-up item (Tab, a click elsewhere) drops it where it is.
    setTimeout(() => {
      const held = latest.current.grabbed;
      if (held && document.activeElement !== handles.current.get(held.id)) drop();
    }, 0);
  }

  // -- drag and drop ----------------------------------------------------------------------

  function insertionIndex(event) {
    const row = event.target.closest?.('li[data-index]');
    if (!row) return items.length;
    const rect = row.getBoundingClientRect();
    const index = Number(row.dataset.index);
    return event.clientY < rect.top + rect.height / 2 ? index : index + 1;
  }

  const accepts = (event) => {
    const types = Array.from(event.dataTransfer?.types ?? []);
    return types.includes(ITEM_DRAG_TYPE) || carriesAsset(event);
  };

  const dropHandlers = editable ? {
    onDragOver: (event) => {
      if (!accepts(event)) return;
      event.preventDefault();
      const moving = Array.from(event.dataTransfer.types).includes(ITEM_DRAG_TYPE);
      event.dataTransfer.dropEffect = moving ? 'move' : 'copy';
      const at = insertionIndex(event);
      if (at !== dropAt) setDropAt(at);
    },
    onDragLeave: (event) => {
      if (!event.currentTarget.contains(event.relatedTarget)) setDropAt(null);
    },
    onDrop: (event) => {
      event.preventDefault();
      const at = insertionIndex(event);
      setDropAt(null);
      setDraggingId(null);
      const itemId = event.dataTransfer.getData(ITEM_DRAG_TYPE);
      const from = items.findIndex((item) => item.id === itemId);
      if (itemId && from >= 0) {
        const to = at > from ? at - 1 : at;
        if (to === from) return;
        const name = items[from].asset.name;
        saveOrder(moved(items, from, to), items, `${name} moved to position ${to + 1} of ${items.length}.`);
        return;
      }
      const asset = draggedAsset(event);
      if (asset) addAt(asset, at);
    },
  } : {};

  function row(item, index) {
    const name = item.asset.name;
    const isCover = item.asset.id === coverId;
    const classes = ['collection-item',
      dropAt === index && 'drop-before', dropAt === index + 1 && index === items.length - 1 && 'drop-after',
      grabbed?.id === item.id && 'grabbed', draggingId === item.id && 'dragging'].filter(Boolean).join(' ');
    return html`<li key=${item.id} class=${classes} data-index=${index} data-item-id=${item.id} data-asset-id=${item.asset.id}
        draggable=${editable ? 'true' : 'false'}
        onDragStart=${editable ? (event) => {
          event.dataTransfer.setData(ITEM_DRAG_TYPE, item.id);
          setAssetDragData(event, item.asset);
          event.dataTransfer.effectAllowed = 'copyMove';
          setDraggingId(item.id);
        } : undefined}
        onDragEnd=${() => { setDraggingId(null); setDropAt(null); }}>
      <span class="item-number" aria-hidden="true">${index + 1}</span>
      ${editable && html`<button type="button" class="drag-handle" aria-label=${`Move ${name}`}
          aria-describedby=${instructionsId} aria-pressed=${grabbed?.id === item.id ? 'true' : 'false'}
          ref=${(element) => { if (element) handles.current.set(item.id, element); else handles.current.delete(item.id); }}
          onKeyDown=${(event) => onHandleKey(event, item)} onBlur=${onHandleBlur}
          onClick=${(event) => { if (event.detail > 0) toggle(item); }}>
        <span aria-hidden="true">⠿</span>
      </button>`}
      <${Thumb} src=${item.asset.thumbnailUrl} alt="" width="96" height="54" />
      <div class="item-text">
        <a href=${`/library/assets/${encodeURIComponent(item.asset.id)}`} draggable="false">${name}</a>
        <span class="meta">${item.asset.kind.toLowerCase()}${isCover ? ' · cover' : ''}</span>
        ${item.notes && html`<span class="notes">${item.notes}</span>`}
      </div>
      ${editable && html`<div class="item-actions">
        ${isCover
          ? html`<span class="badge">Cover</span>`
          : html`<button type="button" aria-label=${`Make cover: ${name}`} onClick=${() => makeCover(item.asset)}>Make cover</button>`}
        <button type="button" aria-label=${`Remove ${name} from the collection`} onClick=${() => remove(item)}>Remove</button>
      </div>`}
    </li>`;
  }

  const shown = collection.itemCount;
  return html`<section class="collection-items" aria-labelledby=${headingId}>
    <div class="section-head">
      <h2 id=${headingId}>Items</h2>
      ${editable && coverId && html`<button type="button" class="link" onClick=${() => makeCover(null)}>Remove the cover</button>`}
    </div>
    ${editable && html`<p class="hint" id=${instructionsId}>Drag items to reorder them, or focus an item’s move handle,
      press Space, move it with the arrow keys and press Space again.</p>`}
    <${ErrorBox} error=${error} title="That did not work" />
    <p class="visually-hidden" aria-live="assertive" data-testid="announcer">${message}</p>
    <div class=${`items-drop${dropAt !== null ? ' drop-active' : ''}`} ...${dropHandlers}
        data-drop-target=${editable ? 'collection' : undefined}>
      ${items.length === 0
        ? html`<${Empty}>${editable ? 'No items yet. Drag assets here from “Add from library”.' : 'No items you may see.'}</${Empty}>`
        : html`<ol class="item-list" aria-label=${`Items of ${collection.name}, in order`}>${items.map(row)}</ol>`}
    </div>
    ${shown > items.length && html`<p class="hint">Showing the first ${items.length} of ${shown} items.</p>`}
  </section>`;
}
