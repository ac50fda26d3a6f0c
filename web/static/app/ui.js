// Shared components of the editor: the page frame, errors, forms, dialogs, the
// workflow stepper, progress, thumbnails and a virtualised grid.
import {
  html, signal, useEffect, useLayoutEffect, useRef, useState, useId,
} from './lib.js';
import { describeError, UserErrors } from './api.js';
import { connection, caughtUp } from './live.js';

// -- toasts --------------------------------------------------------------------------------

export const toasts = signal([]);
let toastId = 0;

/** Shows a short message (kind 'info' | 'success' | 'error') for `ms` milliseconds. */
export function toast(message, kind = 'info', ms = 5000) {
  const id = ++toastId;
  toasts.value = [...toasts.value, { id, message, kind }];
  setTimeout(() => { toasts.value = toasts.value.filter((t) => t.id !== id); }, ms);
}

export function Toasts() {
  return html`<div class="toasts" role="status" aria-live="polite">
    ${toasts.value.map((t) => html`<p key=${t.id} class=${`toast toast-${t.kind}`}>${t.message}</p>`)}
  </div>`;
}

// -- the connection banner -----------------------------------------------------------------

/** Says when live updates are interrupted, and what the feeds caught up on after. */
export function ConnectionBanner() {
  const state = connection.value;
  const caught = caughtUp.value;
  const [recent, setRecent] = useState(false);
  useEffect(() => {
    if (!caught) return undefined;
    setRecent(true);
    const timer = setTimeout(() => setRecent(false), 6000);
    return () => clearTimeout(timer);
  }, [caught?.at]);
  if (state === 'reconnecting') {
    return html`<div class="banner banner-warn" role="status" data-connection="reconnecting">
      Connection lost. Reconnecting… Your changes are kept; live updates resume when we are back.
    </div>`;
  }
  if (state === 'online' && recent && caught) {
    const what = caught.count === 1 ? '1 change' : `${caught.count} changes`;
    return html`<div class="banner banner-ok" role="status" data-connection="resumed">
      Back online. ${caught.count ? `Caught up on ${what} made while away.` : 'Nothing was missed.'}
    </div>`;
  }
  return null;
}

// -- errors --------------------------------------------------------------------------------

/** An error as a person reads it, with an optional retry. Never throws, never blank. */
export function ErrorBox({ error, onRetry, title = 'Something went wrong' }) {
  if (!error) return null;
  const items = error instanceof UserErrors ? error.errors : null;
  return html`<div class="error-box" role="alert">
    <strong>${title}</strong>
    ${items
      ? html`<ul>${items.map((e) => html`<li key=${e.code + e.message} data-code=${e.code}>${e.message}</li>`)}</ul>`
      : html`<p data-code=${error.code ?? ''}>${describeError(error)}</p>`}
    ${onRetry && html`<button type="button" onClick=${onRetry}>Try again</button>`}
  </div>`;
}

/**
 * The messages of `error` (UserErrors) that concern `field` (an input's name): those
 * whose path ends with it (["input", "params", "steps"]) or starts with it after the
 * input object, with an index after it (["tags", "2"] for the third tag).
 */
export function fieldErrors(error, field) {
  if (!(error instanceof UserErrors)) return [];
  return error.errors.filter((e) => {
    const parts = (e.field ?? []).filter((part) => part !== 'input');
    return parts[0] === field || parts[parts.length - 1] === field;
  });
}

/**
 * A labelled control with its errors: <${Field} label="Title" error=${err} name="title">
 * <input .../></${Field}>. The input should carry `id` = the `id` prop (made if absent).
 */
export function Field({ label, error, name, hint, children, id }) {
  const own = useId();
  const fieldId = id ?? `f-${own}`;
  const messages = fieldErrors(error, name);
  // The hint and the errors describe the control (aria-describedby="<id>-about"), so a
  // screen reader reads them with it.
  return html`<div class=${`field${messages.length ? ' field-invalid' : ''}`}>
    <label for=${fieldId}>${label}</label>
    ${typeof children === 'function' ? children(fieldId, `${fieldId}-about`) : children}
    <div id=${`${fieldId}-about`}>
      ${hint && html`<small class="hint">${hint}</small>`}
      ${messages.map((m) => html`<small class="field-error" role="alert" key=${m.code + m.message}>${m.message}</small>`)}
    </div>
  </div>`;
}

// -- loading, empty ------------------------------------------------------------------------

export function Loading({ label = 'Loading…' }) {
  return html`<p class="loading" role="status" aria-live="polite"><span class="spinner" aria-hidden="true"></span>${label}</p>`;
}

export function Empty({ children }) {
  return html`<div class="empty">${children}</div>`;
}

// -- dialogs -------------------------------------------------------------------------------

/**
 * A modal dialog (the native <dialog>, which traps focus and closes on Escape).
 * Shown while `open`; onClose() when the person dismisses it.
 */
export function Dialog({ open, onClose, title, children, className = '' }) {
  const ref = useRef(null);
  const titleId = useId();
  useLayoutEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) dialog.showModal();
    if (!open && dialog.open) dialog.close();
  }, [open]);
  return html`<dialog ref=${ref} class=${`dialog ${className}`} aria-labelledby=${titleId}
      onClose=${() => onClose?.()} onCancel=${(e) => { e.preventDefault(); onClose?.(); }}>
    ${open && html`<h2 id=${titleId}>${title}</h2>${children}`}
  </dialog>`;
}

/** A yes/no question: `consequences` says exactly what will happen. */
export function ConfirmDialog({ open, title, consequences, confirmLabel = 'Delete', onConfirm, onClose, busy, error }) {
  return html`<${Dialog} open=${open} onClose=${onClose} title=${title}>
    <div class="confirm-body">${consequences}</div>
    <${ErrorBox} error=${error} title="Could not do it" />
    <div class="actions">
      <button type="button" onClick=${onClose}>Cancel</button>
      <button type="button" class="danger" disabled=${busy} onClick=${onConfirm}>${busy ? 'Working…' : confirmLabel}</button>
    </div>
  </${Dialog}>`;
}

// -- the workflow --------------------------------------------------------------------------

export const WORKFLOW = [
  ['PROMPT_PLANNING', 'Prompt planning'],
  ['SCENES_SETUP', 'Scenes setup'],
  ['SHOT_ITERATION', 'Shot iteration'],
  ['STORYBOARD_FINAL', 'Storyboard'],
  ['ANIMATION_COMPLETE', 'Animation complete'],
];

/** The project's workflow steps, the current one marked (aria-current="step"). */
export function Stepper({ status }) {
  const at = WORKFLOW.findIndex(([key]) => key === status);
  return html`<ol class="stepper" aria-label="Workflow" data-status=${status}>
    ${WORKFLOW.map(([key, label], i) => html`<li key=${key}
        class=${i < at ? 'done' : i === at ? 'current' : 'todo'}
        aria-current=${i === at ? 'step' : undefined}>
      <span class="step-number" aria-hidden="true">${i + 1}</span>${label}
    </li>`)}
  </ol>`;
}

/** A labelled progress bar; `value` from 0 to 1. */
export function Progress({ value, label }) {
  const percent = Math.round((value ?? 0) * 100);
  return html`<div class="progress">
    <span class="progress-label">${label}</span>
    <progress max="100" value=${percent} aria-label=${label}>${percent}%</progress>
    <span class="progress-value">${percent}%</span>
  </div>`;
}

/** An image loaded only when near the screen. */
export function Thumb({ src, alt, width, height, className = 'thumb' }) {
  if (!src) return html`<div class=${`${className} thumb-empty`} role="img" aria-label=${alt}></div>`;
  return html`<img class=${className} src=${src} alt=${alt} width=${width} height=${height}
    loading="lazy" decoding="async" />`;
}

/** "3 minutes ago" for an ISO date. */
export function ago(iso) {
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  const format = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  for (const [unit, size] of [['year', 31536000], ['month', 2592000], ['day', 86400], ['hour', 3600], ['minute', 60]]) {
    if (Math.abs(seconds) >= size) return format.format(-Math.round(seconds / size), unit);
  }
  return format.format(-Math.round(seconds), 'second');
}

// -- the virtualised grid ------------------------------------------------------------------

/**
 * A grid that renders only the rows on screen (plus `overscan` rows), for lists of
 * thousands. Cells are `cellWidth` x `cellHeight` CSS pixels with `gap` between; the
 * grid scrolls inside itself (height from CSS, class `virtual-grid`). renderItem(item,
 * index) draws a cell; onEnd() runs when the last row comes into view (load more).
 */
export function VirtualGrid({ items, cellWidth = 200, cellHeight = 240, gap = 12, overscan = 2, renderItem, onEnd, label, keyOf = (item) => item.id }) {
  const ref = useRef(null);
  const [view, setView] = useState({ width: 800, height: 600, top: 0 });
  useLayoutEffect(() => {
    const element = ref.current;
    if (!element) return undefined;
    const measure = () => setView({ width: element.clientWidth, height: element.clientHeight, top: element.scrollTop });
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(element);
    element.addEventListener('scroll', measure, { passive: true });
    return () => { observer.disconnect(); element.removeEventListener('scroll', measure); };
  }, []);
  // library/cards.js counts columns the same way, for its arrow keys.
  const columns = Math.max(1, Math.floor((view.width + gap) / (cellWidth + gap)));
  const rowHeight = cellHeight + gap;
  const rows = Math.ceil(items.length / columns);
  const firstRow = Math.max(0, Math.floor(view.top / rowHeight) - overscan);
  const lastRow = Math.min(rows - 1, Math.ceil((view.top + view.height) / rowHeight) + overscan);
  useEffect(() => {
    if (onEnd && rows && lastRow >= rows - 1) onEnd();
  }, [lastRow, rows]);
  const cells = [];
  for (let row = firstRow; row <= lastRow; row += 1) {
    for (let column = 0; column < columns; column += 1) {
      const index = row * columns + column;
      if (index >= items.length) break;
      cells.push(html`<div key=${keyOf(items[index])} class="virtual-cell" role="listitem"
          aria-posinset=${index + 1} aria-setsize=${items.length}
          style=${{ transform: `translate(${column * (cellWidth + gap)}px, ${row * rowHeight}px)`, width: `${cellWidth}px`, height: `${cellHeight}px` }}>
        ${renderItem(items[index], index)}
      </div>`);
    }
  }
  return html`<div class="virtual-grid" ref=${ref} tabindex="0" role="region" aria-label=${label}>
    <div class="virtual-space" role="list" style=${{ height: `${rows * rowHeight}px` }}>${cells}</div>
  </div>`;
}
