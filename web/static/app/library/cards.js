// How library assets are drawn: a card in a grid or a row in a list, each linking to
// the asset's page and draggable onto a collection (as `application/x-studio-asset`
// JSON {id, name}), in a virtualised grid the keyboard can move through (Tab to a
// card, arrows between cards, Home and End, Enter opens; from the grid itself, an
// arrow enters the first card in view).
import { html, useLayoutEffect, useRef, useState } from '../lib.js';
import { VirtualGrid } from '../ui.js';

/** The drag-and-drop type other panels (collections) accept an asset by. */
export const ASSET_DRAG_TYPE = 'application/x-studio-asset';

const GAP = 12;
const GRID_CELL = { width: 190, height: 214 };
const LIST_ROW_HEIGHT = 64;

/** 'CLOSE_UP' -> 'Close up'. */
export function enumLabel(value) {
  if (!value) return '';
  const words = String(value).toLowerCase().replace(/_/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** 75.5 -> '1:15'. */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return '';
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, '0')}`;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
export function formatDate(iso) {
  return iso ? dateFormat.format(new Date(iso)) : '';
}

function startDrag(event, asset) {
  const data = event.dataTransfer;
  if (!data) return;
  data.setData(ASSET_DRAG_TYPE, JSON.stringify({ id: asset.id, name: asset.name }));
  data.setData('text/uri-list', new URL(assetHref(asset), location.origin).href);
  data.setData('text/plain', asset.name);
  data.effectAllowed = 'copyLink';
}

export function assetHref(asset) {
  return `/library/assets/${encodeURIComponent(asset.id)}`;
}

/** The thumbnail (never the full file), or a plain tile saying the kind when none is made yet. */
function Preview({ asset, className }) {
  if (asset.thumbnailUrl) {
    return html`<img class=${className} src=${asset.thumbnailUrl} alt="" loading="lazy" decoding="async" draggable="false" />`;
  }
  return html`<span class=${`${className} asset-preview-none`} aria-hidden="true">${enumLabel(asset.kind)}</span>`;
}

function summary(asset) {
  const parts = [enumLabel(asset.kind)];
  if (asset.duration !== null && asset.duration !== undefined) parts.push(formatDuration(asset.duration));
  if (asset.status && asset.status !== 'READY') parts.push(enumLabel(asset.status));
  return parts.join(' · ');
}

/** One asset as a grid card; `extra` is drawn under its name (a share's permission...). */
export function AssetCard({ asset, index, extra, tabIndex = 0 }) {
  return html`<div class="asset-card" draggable="true" data-asset-id=${asset.id}
      onDragStart=${(event) => startDrag(event, asset)}>
    <${Preview} asset=${asset} className="asset-preview" />
    <a class="asset-link" href=${assetHref(asset)} data-index=${index} draggable="false" tabindex=${tabIndex}>${asset.name}</a>
    <span class="asset-meta">${summary(asset)}</span>
    ${extra}
  </div>`;
}

/** One asset as a list row: small thumbnail, name, kind, tags, date, views. */
export function AssetRow({ asset, index, extra, tabIndex = 0 }) {
  return html`<div class="asset-row" draggable="true" data-asset-id=${asset.id}
      onDragStart=${(event) => startDrag(event, asset)}>
    <${Preview} asset=${asset} className="asset-row-preview" />
    <span class="asset-row-main">
      <a class="asset-link" href=${assetHref(asset)} data-index=${index} draggable="false" tabindex=${tabIndex}>${asset.name}</a>
      <span class="asset-meta">${summary(asset)}${asset.tags?.length ? ` · ${asset.tags.join(', ')}` : ''}</span>
    </span>
    <span class="asset-row-facts">
      ${asset.mood && html`<span>Mood: ${asset.mood}</span>`}
      ${asset.createdAt && html`<span>Made ${formatDate(asset.createdAt)}</span>`}
      ${asset.views !== undefined && html`<span>${asset.views} ${asset.views === 1 ? 'view' : 'views'}</span>`}
      ${extra}
    </span>
  </div>`;
}

/** Moves focus between the cards' links with the arrow keys, Home and End. */
function keyboardMover(wrapper, count, columnsOf, rowHeight) {
  return (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || count === 0) return;
    const scroller = wrapper.current?.querySelector('.virtual-grid');
    const link = event.target.closest?.('a.asset-link[data-index]');
    const columns = columnsOf();
    let next = null;
    if (link) {
      const at = Number(link.dataset.index);
      const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns }[event.key];
      if (step !== undefined) next = at + step;
    } else if (event.target === scroller && ['ArrowDown', 'ArrowRight'].includes(event.key)) {
      // From the grid itself: into the first card in view.
      const top = scroller.getBoundingClientRect().top;
      const links = [...scroller.querySelectorAll('a.asset-link[data-index]')];
      const seen = links.filter((a) => a.closest('[role=listitem]').getBoundingClientRect().bottom > top);
      next = Math.min(...seen.map((a) => Number(a.dataset.index)));
    } else if (event.target !== scroller) return;
    if (event.key === 'Home') next = 0;
    else if (event.key === 'End') next = count - 1;
    if (next === null || !Number.isFinite(next) || next < 0 || next >= count) return;
    event.preventDefault();
    const focus = () => {
      const target = wrapper.current?.querySelector(`a.asset-link[data-index="${next}"]`);
      if (target) {
        target.focus();
        return true;
      }
      return false;
    };
    if (focus()) return;
    // Not drawn yet: scroll its row into view, then focus it once drawn.
    if (scroller) scroller.scrollTop = Math.floor(next / columns) * rowHeight;
    let tries = 0;
    const retry = () => {
      if (!focus() && tries++ < 10) requestAnimationFrame(retry);
    };
    requestAnimationFrame(retry);
  };
}

/**
 * The assets in a virtualised grid (view 'grid') or list (view 'list'): only what is on
 * screen is drawn. onEnd() when the last row shows (load the next page). `extra(asset)`
 * adds to each card (give `cardHeight` room for it).
 */
export function AssetGrid({ assets, view = 'grid', onEnd, label, extra, cardHeight = GRID_CELL.height }) {
  const wrapper = useRef(null);
  const [width, setWidth] = useState(800);
  useLayoutEffect(() => {
    const element = wrapper.current;
    if (!element) return undefined;
    // The width inside the scroller (its scroll bar left out), which the grid lays out in.
    const scroller = element.querySelector('.virtual-grid') ?? element;
    const measure = () => setWidth(scroller.clientWidth);
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(scroller);
    return () => observer.disconnect();
  }, [view]);
  const list = view === 'list';
  // A list is a grid of one column as wide as the space inside the scroller; a grid's
  // cards widen to fill its rows (as many columns as fit at their narrowest).
  const columns = Math.max(1, Math.floor((width + GAP) / (GRID_CELL.width + GAP)));
  const cellWidth = list ? Math.max(240, width) : Math.max(GRID_CELL.width, Math.floor((width + GAP) / columns - GAP));
  const cellHeight = list ? LIST_ROW_HEIGHT : cardHeight;
  const columnsOf = () => {
    const scroller = wrapper.current?.querySelector('.virtual-grid');
    const inner = scroller ? scroller.clientWidth : width;
    return list ? 1 : Math.max(1, Math.floor((inner + GAP) / (cellWidth + GAP)));
  };
  const onKeyDown = keyboardMover(wrapper, assets.length, columnsOf, cellHeight + GAP);
  // One card is a Tab stop (the last one focused), so Tab moves past the grid and the
  // arrows move within it.
  const [active, setActive] = useState(0);
  const current = Math.min(active, assets.length - 1);
  const onFocusIn = (event) => {
    const index = event.target.dataset?.index;
    if (index !== undefined) setActive(Number(index));
  };
  const Item = list ? AssetRow : AssetCard;
  return html`<div class=${`asset-grid asset-grid-${view}`} ref=${wrapper} onKeyDown=${onKeyDown} onFocusIn=${onFocusIn}>
    <${VirtualGrid} key=${view} items=${assets} cellWidth=${cellWidth} cellHeight=${cellHeight} gap=${GAP}
      label=${label} onEnd=${onEnd}
      renderItem=${(asset, index) => html`<${Item} asset=${asset} index=${index} extra=${extra?.(asset)}
        tabIndex=${index === current ? 0 : -1} />`} />
  </div>`;
}
