// The iteration history: each iteration a group of tiles (its prompt, its parent
// image if it refines one, its progress), each tile one variant with what can be done
// to it (star, compare, refine, make master, cancel, retry).
import { html } from '../lib.js';

/** "Iteration 2, variant 3": people count from 1, the API from 0. */
export function imageName(image) {
  return `Iteration ${image.iterationNumber + 1}, variant ${image.variantNumber + 1}`;
}

const STATUS_TEXT = {
  PENDING: 'Waiting',
  PROCESSING: 'Generating',
  COMPLETE: 'Done',
  FAILED: 'Failed',
  CANCELED: 'Canceled',
};

export const IN_PROGRESS = new Set(['PENDING', 'PROCESSING']);

/** The URL of the small preview of `image`: its thumbnail, else the image itself. */
export function previewOf(image) {
  return image?.thumbnailUrl || image?.imageUrl || null;
}

function Hidden({ children }) {
  return html`<span class="visually-hidden">${children}</span>`;
}

/**
 * One variant. `actions`: {favorite, compare, refine, master, cancel, retry, open}
 * (each (image) => void); `comparing` whether it is picked for comparison; `master`
 * whether it is the shot's master; `busy` whether an action on it is under way.
 */
export function Tile({ image, master, comparing, busy, actions }) {
  const name = imageName(image);
  const status = image.status;
  const preview = previewOf(image);
  const done = status === 'COMPLETE';
  return html`<li class=${`tile tile-${status.toLowerCase()}${master ? ' tile-master' : ''}${comparing ? ' tile-comparing' : ''}`}
      data-image-id=${image.id} data-status=${status} data-master=${master ? 'true' : 'false'}>
    <div role="group" aria-label=${name} class="tile-body">
      <div class="tile-media">
        ${done && preview
          ? html`<button type="button" class="tile-open" onClick=${() => actions.open(image)}>
              <img src=${preview} alt=${`${name}${image.isFavorite ? ', a favourite' : ''}`} loading="lazy" decoding="async" />
              <${Hidden}>Open ${name} full size</${Hidden}>
            </button>`
          : html`<div class="tile-placeholder" aria-hidden="true">${STATUS_TEXT[status] ?? status}</div>`}
        ${master && html`<span class="tile-badge badge-master">Master</span>`}
      </div>
      <div class="tile-status">
        <span class=${`status status-${status.toLowerCase()}`} data-status=${status}>${STATUS_TEXT[status] ?? status}</span>
        ${IN_PROGRESS.has(status) && html`<progress class="tile-progress" aria-label=${`${name}: ${STATUS_TEXT[status].toLowerCase()}`}></progress>`}
      </div>
      ${(status === 'FAILED' || status === 'CANCELED') && html`<p class="tile-error">
        ${status === 'FAILED' ? (image.error || 'The generation failed.') : 'You canceled this one.'}
        ${' '}Retry it, or refine one of the finished images.
      </p>`}
      <div class="tile-actions">
        <button type="button" class="star" aria-pressed=${image.isFavorite ? 'true' : 'false'}
            disabled=${busy} onClick=${() => actions.favorite(image)}>
          <span aria-hidden="true">${image.isFavorite ? '★' : '☆'}</span><${Hidden}>Favourite ${name}</${Hidden}>
        </button>
        ${done && html`<label class="compare-pick">
          <input type="checkbox" checked=${comparing} onChange=${() => actions.compare(image)} />
          Compare<${Hidden}> ${name}</${Hidden}>
        </label>`}
        ${done && html`<button type="button" disabled=${busy} onClick=${() => actions.refine(image)}>Refine<${Hidden}> ${name}</${Hidden}></button>`}
        ${done && !master && html`<button type="button" disabled=${busy} aria-label=${`Make master: ${name}`}
            onClick=${() => actions.master(image)}>Make master</button>`}
        ${IN_PROGRESS.has(status) && html`<button type="button" disabled=${busy} onClick=${() => actions.cancel(image)}>Cancel<${Hidden}> ${name}</${Hidden}></button>`}
        ${(status === 'FAILED' || status === 'CANCELED') && html`<button type="button" class="primary" disabled=${busy}
            onClick=${() => actions.retry(image)}>Retry<${Hidden}> ${name}</${Hidden}></button>`}
      </div>
    </div>
  </li>`;
}

/** One iteration: its heading, prompt, parent image, progress, and its tiles. */
export function IterationGroup({ iteration, masterId, comparing, busy, actions }) {
  const number = iteration.iterationNumber + 1;
  const total = iteration.images.length;
  const count = (status) => iteration.images.filter((i) => i.status === status).length;
  const running = iteration.images.filter((i) => IN_PROGRESS.has(i.status));
  const stopped = iteration.images.filter((i) => i.status === 'FAILED' || i.status === 'CANCELED');
  const finished = total - running.length;
  const summary = [`${count('COMPLETE')} of ${total} done`];
  if (count('FAILED')) summary.push(`${count('FAILED')} failed`);
  if (count('CANCELED')) summary.push(`${count('CANCELED')} canceled`);
  if (running.length) summary.push(`${running.length} in progress`);
  const parent = iteration.parentImage;
  const headingId = `iteration-${iteration.iterationNumber}`;
  return html`<section class="iteration" aria-labelledby=${headingId} data-iteration=${iteration.iterationNumber}>
    <header class="iteration-head">
      <h3 id=${headingId}>Iteration ${number}</h3>
      ${parent
        ? html`<p class="iteration-parent">
            ${previewOf(parent) && html`<img class="parent-thumb" src=${previewOf(parent)} alt="" />`}
            Refined from <strong>${imageName(parent)}</strong>
          </p>`
        : html`<p class="iteration-parent hint">From the prompt alone</p>`}
      <p class="iteration-prompt"><span class="hint">Prompt:</span> ${iteration.prompt}</p>
      <div class="progress iteration-progress">
        <span class="progress-label">${summary.join(' · ')}</span>
        <progress max=${total} value=${finished} aria-label=${`Iteration ${number}: ${finished} of ${total} finished`}></progress>
      </div>
      ${(running.length > 1 || stopped.length > 1) && html`<div class="iteration-actions">
        ${running.length > 1 && html`<button type="button" onClick=${() => actions.cancelAll(running)}>Cancel the ${running.length} in progress<${Hidden}> in iteration ${number}</${Hidden}></button>`}
        ${stopped.length > 1 && html`<button type="button" onClick=${() => actions.retryAll(stopped)}>Retry the ${stopped.length} failed or canceled<${Hidden}> in iteration ${number}</${Hidden}></button>`}
      </div>`}
    </header>
    <ul class="tiles">
      ${iteration.images.map((image) => html`<${Tile} key=${image.id} image=${image}
        master=${image.id === masterId} comparing=${comparing.includes(image.id)}
        busy=${busy.has(image.id)} actions=${actions} />`)}
    </ul>
  </section>`;
}
