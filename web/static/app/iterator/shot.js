// One shot in the iterator: its iterations kept live by `iterationStatus` (the
// first message is every iteration as it is, then one per image change), its
// master kept live by the project's feed, the generate form, and the dialogs to
// refine, compare two variants and see one full size.
import { html, useState, useEffect, useRef, useCallback } from '../lib.js';
import { useQuery, gql, mutate, describeError } from '../api.js';
import { useFeed } from '../live.js';
import { Dialog, ErrorBox, Loading, Empty, toast } from '../ui.js';
import {
  SHOT, MASTER_OF_SHOT, ITERATION_STATUS, FAVORITE, SELECT_MASTER, CANCEL, RETRY,
} from './queries.js';
import { IterationGroup, imageName } from './tiles.js';
import { GenerateForm, RefineDialog, VARIANTS } from './forms.js';

/** Puts `image` (as a mutation answered it) in its place among `iterations`. */
function withImage(iterations, image) {
  return iterations.map((it) => (it.iterationNumber !== image.iterationNumber ? it : {
    ...it, images: it.images.map((i) => (i.id === image.id ? { ...i, ...image } : i)),
  }));
}

/** Adds a new iteration (from generateShotImages) unless the feed brought it already. */
function withIteration(iterations, iteration) {
  if (!iteration || iterations.some((it) => it.iterationNumber === iteration.iterationNumber)) return iterations;
  return [...iterations, iteration].sort((a, b) => a.iterationNumber - b.iterationNumber);
}

function findImage(iterations, id) {
  for (const it of iterations) {
    const found = it.images.find((i) => i.id === id);
    if (found) return found;
  }
  return null;
}

function FullImage({ image }) {
  return html`<figure class="full-image">
    ${image.imageUrl
      ? html`<img src=${image.imageUrl} alt=${imageName(image)} />`
      : html`<div class="tile-placeholder">No image stored</div>`}
    <figcaption>${imageName(image)}${image.isFavorite ? ' ★' : ''}${image.model ? ` · ${image.model}` : ''}</figcaption>
  </figure>`;
}

function CompareDialog({ images, masterId, onMaster, onClose }) {
  return html`<${Dialog} open=${true} onClose=${onClose} className="compare-dialog"
      title=${`Compare ${images.map(imageName).join(' and ')}`}>
    <div class="compare">
      ${images.map((image) => html`<div key=${image.id} class="compare-side">
        <${FullImage} image=${image} />
        ${image.id === masterId
          ? html`<p class="badge-master">The master image</p>`
          : html`<button type="button" aria-label=${`Make master: ${imageName(image)}`} onClick=${() => onMaster(image)}>Make master</button>`}
      </div>`)}
    </div>
    <div class="actions"><button type="button" onClick=${onClose}>Close</button></div>
  </${Dialog}>`;
}

export function ShotIterator({ shotId, events, onMasterChanged }) {
  const shot = useQuery(SHOT, { id: shotId }, [shotId]);
  const [iterations, setIterations] = useState(null);
  const [feedError, setFeedError] = useState(null);
  const [masterId, setMasterId] = useState(null);
  const [comparing, setComparing] = useState([]);
  const [dialog, setDialog] = useState(null); // {kind: 'refine'|'compare'|'open', image?}
  const [busy, setBusy] = useState(() => new Set());
  const node = shot.data?.node;
  useEffect(() => { if (node) setMasterId(node.selectedImage?.id ?? null); }, [node]);

  useFeed(ITERATION_STATUS, { shotId }, {
    onEvent: (event) => {
      setFeedError(null);
      setIterations(event.iterations);
    },
    onError: (error) => setFeedError(error),
  }, [shotId]);

  // The master lives on the storyboard selection: its changes come on the project's feed.
  const masterReload = useRef(null);
  const reloadMaster = useCallback(() => {
    clearTimeout(masterReload.current);
    masterReload.current = setTimeout(async () => {
      try {
        const data = await gql(MASTER_OF_SHOT, { id: shotId });
        setMasterId(data.node?.selectedImage?.id ?? null);
      } catch {
        // The next event tries again; the tiles stay as they are.
      }
    }, 150);
  }, [shotId]);
  useEffect(() => {
    const event = events.value;
    if (event && event.kind.startsWith('STORYBOARD_SELECTION_')) reloadMaster();
  }, [events.value]);
  useEffect(() => () => clearTimeout(masterReload.current), []);

  async function act(image, run) {
    setBusy((b) => new Set(b).add(image.id));
    try {
      await run();
    } catch (caught) {
      toast(`${imageName(image)}: ${describeError(caught)}`, 'error', 8000);
    } finally {
      setBusy((b) => { const next = new Set(b); next.delete(image.id); return next; });
    }
  }
  const update = (payload) => { if (payload?.image) setIterations((its) => withImage(its ?? [], payload.image)); };
  const makeMaster = (image) => act(image, async () => {
    const payload = await mutate(SELECT_MASTER, { input: { shotId, imageId: image.id } });
    setMasterId(payload.selection?.shot?.selectedImage?.id ?? image.id);
    onMasterChanged?.();
    toast(`${imageName(image)} is the shot's master image.`, 'success');
  });
  const actions = {
    favorite: (image) => act(image, async () => update(await mutate(FAVORITE, { input: { imageId: image.id, isFavorite: !image.isFavorite } }))),
    cancel: (image) => act(image, async () => update(await mutate(CANCEL, { input: { id: image.id } }))),
    retry: (image) => act(image, async () => update(await mutate(RETRY, { input: { id: image.id } }))),
    cancelAll: (images) => images.forEach((image) => actions.cancel(image)),
    retryAll: (images) => images.forEach((image) => actions.retry(image)),
    master: makeMaster,
    refine: (image) => setDialog({ kind: 'refine', image }),
    open: (image) => setDialog({ kind: 'open', image }),
    compare: (image) => setComparing((picked) => {
      if (picked.includes(image.id)) return picked.filter((id) => id !== image.id);
      return [...picked, image.id].slice(-2);
    }),
  };
  const started = (iteration) => setIterations((its) => withIteration(its ?? [], iteration));

  if (shot.error && !shot.data) return html`<${ErrorBox} error=${shot.error} onRetry=${shot.reload} />`;
  if (!shot.data) return html`<${Loading} label="Loading the shot…" />`;
  if (!node) {
    return html`<${Empty}>This shot is not there any more. Pick another one from the list.</${Empty}>`;
  }
  const list = iterations ?? [];
  const compared = comparing.map((id) => findImage(list, id)).filter(Boolean);
  const latest = list[list.length - 1];
  const dialogImage = dialog?.image ? findImage(list, dialog.image.id) ?? dialog.image : null;
  return html`<div class="shot-iterator" data-shot-id=${node.id}>
    <h2>Scene ${node.scene.sceneNumber} · Shot ${node.shotNumber}${node.description ? `: ${node.description}` : ''}</h2>
    <${GenerateForm} key=${node.id} shot=${node} models=${shot.data.generationModels} onStarted=${started} />
    <div class="compare-bar" role="region" aria-label="Compare">
      <p>${compared.length === 0 ? 'Tick Compare on two finished images to see them side by side.'
        : compared.length === 1 ? `${imageName(compared[0])} picked; pick one more.`
        : `${imageName(compared[0])} and ${imageName(compared[1])} picked.`}</p>
      <button type="button" disabled=${compared.length !== 2} onClick=${() => setDialog({ kind: 'compare' })}>Compare side by side</button>
      ${compared.length > 0 && html`<button type="button" class="link" onClick=${() => setComparing([])}>Clear</button>`}
    </div>
    ${feedError && html`<${ErrorBox} error=${feedError} title="Live updates of this shot stopped" />`}
    <h2 class="history-title">Iterations</h2>
    ${iterations === null && html`<${Loading} label="Loading the iterations…" />`}
    ${iterations !== null && list.length === 0 && html`<${Empty}>No images yet. Choose a model and generate the first ${VARIANTS}.</${Empty}>`}
    <div class="history">
      ${[...list].reverse().map((iteration) => html`<${IterationGroup} key=${iteration.iterationNumber}
        iteration=${iteration} masterId=${masterId} comparing=${comparing} busy=${busy} actions=${actions} />`)}
    </div>
    ${dialog?.kind === 'refine' && html`<${RefineDialog} image=${dialogImage} models=${shot.data.generationModels}
      shotId=${shotId} iterationPrompt=${list.find((it) => it.iterationNumber === dialogImage.iterationNumber)?.prompt ?? latest?.prompt}
      onStarted=${started} onClose=${() => setDialog(null)} />`}
    ${dialog?.kind === 'compare' && compared.length === 2 && html`<${CompareDialog} images=${compared}
      masterId=${masterId} onMaster=${makeMaster} onClose=${() => setDialog(null)} />`}
    ${dialog?.kind === 'open' && html`<${Dialog} open=${true} onClose=${() => setDialog(null)}
        title=${imageName(dialogImage)} className="compare-dialog">
      <${FullImage} image=${dialogImage} />
      <div class="actions">
        ${dialogImage.id !== masterId && dialogImage.status === 'COMPLETE' && html`<button type="button" onClick=${() => makeMaster(dialogImage)}>Make master</button>`}
        <button type="button" onClick=${() => setDialog(null)}>Close</button>
      </div>
    </${Dialog}>`}
  </div>`;
}
