// Scenes setup (/projects/:projectId/scenes): the project's scenes and their shots,
// created, edited in place, deleted, and put in order by drag and drop (on a handle)
// or by keyboard (Alt+Arrow Up/Down on a focused handle, or the Move up/down buttons).
//
// The numbers shown are always the API's: a move shows the new order at once, then
// the numbers the reorder mutation answers. Shots move within their scene only: the
// API has no way to move a shot to another scene. The project's feed (`events`)
// reloads the list, so people working on one project see each other's changes.
import { html, signal, useState, useEffect, useRef, useSignalEffect, useId } from '../lib.js';
import { gql, mutate, UserErrors } from '../api.js';
import { ProjectShell } from '../project.js';
import { navigate } from '../router.js';
import { ConfirmDialog, Empty, ErrorBox, Field, Loading, toast } from '../ui.js';

const SHOT_FIELDS = 'id shotNumber description initialPrompt latestIterationNumber selectedImage { id }';
const SCENE_FIELDS = `id sceneNumber title description shots { ${SHOT_FIELDS} }`;

const SCENES = `query ScenesSetup($id: ID!) { project(id: $id) { id status scenes { ${SCENE_FIELDS} } } }`;
const ERRORS = 'userErrors { code field message }';
const CREATE_SCENE = `mutation CreateScene($input: CreateSceneInput!) { createScene(input: $input) { scene { ${SCENE_FIELDS} } ${ERRORS} } }`;
const UPDATE_SCENE = `mutation UpdateScene($input: UpdateSceneInput!) { updateScene(input: $input) { scene { id title description } ${ERRORS} } }`;
const DELETE_SCENE = `mutation DeleteScene($input: DeleteInput!) { deleteScene(input: $input) { deletedId ${ERRORS} } }`;
const REORDER_SCENES = `mutation ReorderScenes($input: ReorderInput!) { reorderScenes(input: $input) { project { id scenes { id sceneNumber } } ${ERRORS} } }`;
const CREATE_SHOT = `mutation CreateShot($input: CreateShotInput!) { createShot(input: $input) { shot { ${SHOT_FIELDS} } ${ERRORS} } }`;
const UPDATE_SHOT = `mutation UpdateShot($input: UpdateShotInput!) { updateShot(input: $input) { shot { id description initialPrompt } ${ERRORS} } }`;
const DELETE_SHOT = `mutation DeleteShot($input: DeleteInput!) { deleteShot(input: $input) { deletedId ${ERRORS} } }`;
const REORDER_SHOTS = `mutation ReorderShots($input: ReorderInput!) { reorderShots(input: $input) { scene { id shots { id shotNumber } } ${ERRORS} } }`;
const ADVANCE = `mutation StartIterating($input: UpdateProjectInput!) { updateProject(input: $input) { project { id status } ${ERRORS} } }`;

const RELOAD_ON = /^(SCENE_|SHOT_(CREATED|UPDATED|DELETED)$|STORYBOARD_SELECTION_)/;
const TITLE_MAX = 200;

/** `items` with the one of `id` moved to `index` (0-based). */
function moved(items, id, index) {
  const from = items.findIndex((item) => item.id === id);
  if (from < 0 || index < 0 || index >= items.length || index === from) return null;
  const next = items.slice();
  const [item] = next.splice(from, 1);
  next.splice(index, 0, item);
  return next;
}

/** "and its 3 shots" for a scene's delete question. */
function plural(count, one, many = `${one}s`) {
  return `${count} ${count === 1 ? one : many}`;
}

/** Focuses `ref`'s element once it is drawn again (after a form it replaced closes). */
function focusSoon(ref) {
  // Two frames: after the render, and after a closing dialog gives the focus back.
  requestAnimationFrame(() => requestAnimationFrame(() => ref.current?.focus()));
}

/** Empty text as null: the API clears a description or prompt with null. */
const orNull = (text) => (text.trim() ? text : null);

export default function ScenesPage({ projectId }) {
  return html`<${ProjectShell} projectId=${projectId}>
    ${(project, events, reloadHeader) => html`<${ScenesSetup} key=${project.id} header=${project}
      events=${events} reloadHeader=${reloadHeader} />`}
  </${ProjectShell}>`;
}

/**
 * The project's scenes, like useQuery's {data, error, reload, setData}, with `hold()`:
 * a change of ours is under way, so an answer asked for before it ends is dropped
 * (it would put back the order just changed) and a reload asked for meanwhile runs
 * after it (`release()`).
 */
function useScenes(projectId) {
  const [state, setState] = useState({ data: null, error: null });
  const generation = useRef(0);
  const holds = useRef(0);
  const wanted = useRef(false);
  const reload = async () => {
    if (holds.current) {
      wanted.current = true;
      return;
    }
    const mine = ++generation.current;
    try {
      const data = await gql(SCENES, { id: projectId });
      if (mine === generation.current) setState({ data, error: null });
    } catch (error) {
      if (mine === generation.current) setState((s) => ({ ...s, error }));
    }
  };
  useEffect(() => {
    reload();
    return () => { generation.current += 1; };
  }, [projectId]);
  const setData = (update) => setState((s) => ({ ...s, data: update(s.data) }));
  const hold = () => {
    holds.current += 1;
    generation.current += 1;
  };
  const release = () => {
    holds.current -= 1;
    if (!holds.current && wanted.current) {
      wanted.current = false;
      reload();
    }
  };
  return { ...state, reload, setData, hold, release };
}

function ScenesSetup({ header, events, reloadHeader }) {
  const list = useScenes(header.id);
  const announcement = useState(() => signal(''))[0];
  const reloadTimer = useRef(null);
  const dragging = useRef(null); // {kind: 'scene'|'shot', id, sceneId}
  const [dropTarget, setDropTarget] = useState(null);
  const [failure, setFailure] = useState(null);
  const readOnly = header.team.viewerRole === 'VIEWER';

  const reloadSoon = () => {
    clearTimeout(reloadTimer.current);
    reloadTimer.current = setTimeout(() => list.reload(), 200);
  };
  useSignalEffect(() => {
    const event = events.value;
    if (event && RELOAD_ON.test(event.kind)) reloadSoon();
  });
  useEffect(() => () => clearTimeout(reloadTimer.current), []);

  /** Runs a mutation with the feed's reloads held back until it is done. */
  const run = async (work) => {
    list.hold();
    try {
      return await work();
    } finally {
      list.release();
    }
  };

  const announce = (text) => {
    // The same sentence twice must still be read out: clear, then set.
    announcement.value = '';
    setTimeout(() => { announcement.value = text; }, 50);
  };

  const focusLater = (selector) => {
    requestAnimationFrame(() => requestAnimationFrame(() => {
      const wanted = document.querySelector(selector);
      if (wanted && !wanted.disabled) wanted.focus();
      else document.querySelector(selector.replace(/-(up|down)"]$/, '-handle"]'))?.focus();
    }));
  };

  const scenes = list.data?.project?.scenes ?? [];

  const moveScene = async (id, index, focusKey) => {
    const before = scenes.find((s) => s.id === id);
    const order = moved(scenes, id, index);
    if (!before || !order) return;
    setFailure(null);
    list.setData((d) => ({ ...d, project: { ...d.project, scenes: order } }));
    if (focusKey) focusLater(`[data-focus="scene-${id}-${focusKey}"]`);
    await run(async () => {
      try {
        const payload = await mutate(REORDER_SCENES, { input: { parentId: header.id, ids: order.map((s) => s.id) } });
        const numbers = new Map(payload.project.scenes.map((s) => [s.id, s.sceneNumber]));
        list.setData((d) => ({
          ...d,
          project: {
            ...d.project,
            scenes: d.project.scenes.map((s) => ({ ...s, sceneNumber: numbers.get(s.id) ?? s.sceneNumber }))
              .sort((a, b) => a.sceneNumber - b.sceneNumber),
          },
        }));
        announce(`Scene ${before.sceneNumber} moved to position ${numbers.get(id)}`);
      } catch (error) {
        setFailure({ error, title: 'The scene was not moved' });
        list.reload();
      }
    });
  };

  const moveShot = async (scene, id, index, focusKey) => {
    const before = scene.shots.find((s) => s.id === id);
    const order = moved(scene.shots, id, index);
    if (!before || !order) return;
    setFailure(null);
    const withShots = (d, shots) => ({
      ...d,
      project: { ...d.project, scenes: d.project.scenes.map((s) => (s.id === scene.id ? { ...s, shots: shots(s.shots) } : s)) },
    });
    list.setData((d) => withShots(d, () => order));
    if (focusKey) focusLater(`[data-focus="shot-${id}-${focusKey}"]`);
    await run(async () => {
      try {
        const payload = await mutate(REORDER_SHOTS, { input: { parentId: scene.id, ids: order.map((s) => s.id) } });
        const numbers = new Map(payload.scene.shots.map((s) => [s.id, s.shotNumber]));
        list.setData((d) => withShots(d, (shots) => shots
          .map((s) => ({ ...s, shotNumber: numbers.get(s.id) ?? s.shotNumber }))
          .sort((a, b) => a.shotNumber - b.shotNumber)));
        announce(`Shot ${before.shotNumber} of scene ${scene.sceneNumber} moved to position ${numbers.get(id)}`);
      } catch (error) {
        setFailure({ error, title: 'The shot was not moved' });
        list.reload();
      }
    });
  };

  // Drag and drop: a dragged item takes the place of the one it is dropped on.
  const drag = {
    start: (event, item) => {
      dragging.current = item;
      event.dataTransfer.effectAllowed = 'move';
      event.dataTransfer.setData('text/plain', item.label);
    },
    end: () => { dragging.current = null; setDropTarget(null); },
    accepts: (kind, sceneId) => {
      const item = dragging.current;
      return Boolean(item && item.kind === kind && (kind === 'scene' || item.sceneId === sceneId));
    },
    over: (event, kind, id, sceneId) => {
      if (!drag.accepts(kind, sceneId)) return;
      event.preventDefault();
      event.stopPropagation();
      event.dataTransfer.dropEffect = 'move';
      if (dropTarget !== id) setDropTarget(id);
    },
    drop: (event, kind, targetId, scene) => {
      if (!drag.accepts(kind, scene?.id)) return;
      event.preventDefault();
      event.stopPropagation();
      const item = dragging.current;
      drag.end();
      if (kind === 'scene') moveScene(item.id, scenes.findIndex((s) => s.id === targetId));
      else moveShot(scene, item.id, scene.shots.findIndex((s) => s.id === targetId));
    },
    target: dropTarget,
  };

  if (list.error && !list.data) return html`<${ErrorBox} error=${list.error} onRetry=${list.reload} />`;
  if (!list.data) return html`<${Loading} label="Loading the scenes…" />`;
  if (!list.data.project) return html`<${Empty}>This project is not there any more. <a href="/projects">Back to projects</a></${Empty}>`;

  const context = { header, readOnly, run, reload: list.reload, drag, moveScene, moveShot, setFailure, announce };
  const shotsHref = `/projects/${encodeURIComponent(header.id)}/shots`;
  return html`<section class="page scenes-setup" aria-labelledby="scenes-heading">
    <h2 id="scenes-heading" tabindex="-1">Scenes and shots</h2>
    <p class="visually-hidden" role="status" aria-live="polite" data-announcer>${announcement}</p>
    ${!readOnly && scenes.length > 0 && html`<p class="hint" id="reorder-help">To reorder, drag a handle (⠿), or focus it and press Alt+Arrow Up or Alt+Arrow Down; or use the Move up and Move down buttons. Shots move within their scene.</p>`}
    ${readOnly && html`<p class="hint">You are a viewer in this team: you can see the scenes but not change them.</p>`}
    ${failure && html`<${ErrorBox} error=${failure.error} title=${failure.title} />`}
    ${list.error && html`<${ErrorBox} error=${list.error} title="Could not refresh the scenes" onRetry=${list.reload} />`}
    ${scenes.length === 0
      ? html`<${Empty}>No scenes yet. Add the first one below: each scene is a run of shots.</${Empty}>`
      : html`<ol class="scene-list" aria-label="Scenes">
          ${scenes.map((scene, index) => html`<${SceneItem} key=${scene.id} scene=${scene} index=${index}
            count=${scenes.length} context=${context} />`)}
        </ol>`}
    ${!readOnly && html`<${NewScene} context=${context} />`}
    <div class="next-step">
      <h3>Next step</h3>
      <p>With scenes and shots in place, make images for each shot and choose a master.</p>
      <div class="actions start">
        ${header.status === 'SCENES_SETUP' && !readOnly && scenes.some((s) => s.shots.length) && html`<${Advance}
          projectId=${header.id} reloadHeader=${reloadHeader} href=${shotsHref} />`}
        <a class="button" href=${shotsHref}>Go to shots</a>
      </div>
    </div>
  </section>`;
}

function Advance({ projectId, reloadHeader, href }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const go = async () => {
    setBusy(true);
    try {
      await mutate(ADVANCE, { input: { id: projectId, status: 'SHOT_ITERATION' } });
      reloadHeader();
      navigate(href);
    } catch (caught) {
      setError(caught);
      setBusy(false);
    }
  };
  return html`<button type="button" class="primary" disabled=${busy} onClick=${go}>Scenes done: iterate shots</button>
    <${ErrorBox} error=${error} title="Could not move the project on" />`;
}

/** The handle and Move up/down buttons of a scene or shot. */
function MoveControls({ name, focusKey, index, count, onMove, dragItem, drag, describedBy }) {
  const keys = (event) => {
    if (!event.altKey || (event.key !== 'ArrowUp' && event.key !== 'ArrowDown')) return;
    event.preventDefault();
    onMove(index + (event.key === 'ArrowUp' ? -1 : 1), 'handle');
  };
  return html`<span class="move-controls">
    <button type="button" class="handle" draggable="true" data-focus=${`${focusKey}-handle`}
      aria-label=${`Reorder ${name}`} aria-describedby=${describedBy}
      title="Drag to reorder, or press Alt+Arrow Up or Down"
      onKeyDown=${keys} onDragStart=${(e) => drag.start(e, dragItem)} onDragEnd=${drag.end}>⠿</button>
    <button type="button" class="small" data-focus=${`${focusKey}-up`} disabled=${index === 0}
      aria-label=${`Move ${name} up`} onClick=${() => onMove(index - 1, 'up')}>↑</button>
    <button type="button" class="small" data-focus=${`${focusKey}-down`} disabled=${index === count - 1}
      aria-label=${`Move ${name} down`} onClick=${() => onMove(index + 1, 'down')}>↓</button>
  </span>`;
}

/** Runs a mutation for a form: {busy, error, submit(work) -> bool}. */
function useSubmit(run) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const submit = async (work) => {
    setBusy(true);
    setError(null);
    try {
      await run(work);
      return true;
    } catch (caught) {
      setError(caught);
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, setError, submit };
}

function SceneItem({ scene, index, count, context }) {
  const { readOnly, drag } = context;
  const [editing, setEditing] = useState(false);
  const editButton = useRef(null);
  const stopEditing = () => { setEditing(false); focusSoon(editButton); };
  const [deleting, setDeleting] = useState(false);
  const remove = useSubmit(context.run);
  const headingId = useId();
  const name = `scene ${scene.sceneNumber}`;
  const shotCount = scene.shots.length;
  const images = scene.shots.filter((s) => s.latestIterationNumber !== null).length;
  const confirmDelete = async () => {
    const done = await remove.submit(() => mutate(DELETE_SCENE, { input: { id: scene.id } }));
    if (done) {
      setDeleting(false);
      toast(`Scene “${scene.title}” deleted.`, 'success');
      context.announce(`Scene ${scene.sceneNumber} deleted`);
      context.reload();
      focusSoon({ current: document.getElementById('scenes-heading') });
    }
  };
  const classes = ['scene-item', drag.target === scene.id ? 'drop-target' : ''].join(' ');
  return html`<li class=${classes} data-scene-id=${scene.id} aria-labelledby=${headingId}
      onDragOver=${(e) => drag.over(e, 'scene', scene.id)} onDrop=${(e) => drag.drop(e, 'scene', scene.id)}>
    <div class="item-head">
      ${!readOnly && html`<${MoveControls} name=${name} focusKey=${`scene-${scene.id}`} index=${index} count=${count}
        describedBy="reorder-help" drag=${drag} dragItem=${{ kind: 'scene', id: scene.id, label: `Scene ${scene.sceneNumber}` }}
        onMove=${(to, focusKey) => context.moveScene(scene.id, to, focusKey)} />`}
      <h3 id=${headingId} class="scene-title"><span class="number">Scene ${scene.sceneNumber}</span>: ${scene.title}</h3>
      ${!readOnly && !editing && html`<span class="item-actions">
        <button type="button" ref=${editButton} onClick=${() => setEditing(true)} aria-label=${`Edit ${name}`}>Edit</button>
        <button type="button" onClick=${() => setDeleting(true)} aria-label=${`Delete ${name}`}>Delete</button>
      </span>`}
    </div>
    ${editing
      ? html`<${SceneForm} scene=${scene} context=${context} onDone=${stopEditing} />`
      : scene.description && html`<p class="description">${scene.description}</p>`}
    <${ShotList} scene=${scene} context=${context} />
    <${ConfirmDialog} open=${deleting} title=${`Delete scene ${scene.sceneNumber}?`}
      onClose=${() => { setDeleting(false); remove.setError(null); }} onConfirm=${confirmDelete}
      busy=${remove.busy} error=${remove.error} confirmLabel="Delete scene"
      consequences=${html`<p>Scene ${scene.sceneNumber}, “${scene.title}”, will be deleted with
        ${shotCount ? ` its ${plural(shotCount, 'shot')}` : ' no shots (it has none)'}${images ? `, every image made for ${images === 1 ? 'that shot' : 'them'} and their chosen masters and clips` : ''}.
        The scenes after it move up one. This cannot be undone.</p>
        <p class="hint">The images already in the library stay there.</p>`} />
  </li>`;
}

function SceneForm({ scene, context, onDone }) {
  const [title, setTitle] = useState(scene?.title ?? '');
  const [description, setDescription] = useState(scene?.description ?? '');
  const [opened] = useState(scene);
  const form = useSubmit(context.run);
  const save = async (event) => {
    event.preventDefault();
    const done = await form.submit(async () => {
      if (scene) {
        // Only what changed since the form opened, so a teammate's edit of the other
        // field meanwhile is not written back over.
        const input = { id: scene.id };
        if (title !== opened.title) input.title = title;
        if (orNull(description) !== orNull(opened.description ?? '')) input.description = orNull(description);
        if (Object.keys(input).length > 1) await mutate(UPDATE_SCENE, { input });
      } else {
        const payload = await mutate(CREATE_SCENE, { input: { projectId: context.header.id, title, description: orNull(description) } });
        context.announce(`Scene ${payload.scene.sceneNumber} added`);
      }
    });
    if (done) {
      context.reload();
      if (scene) onDone();
      else { setTitle(''); setDescription(''); }
    }
  };
  const label = scene ? `scene ${scene.sceneNumber}` : 'the new scene';
  return html`<form class=${scene ? 'inline-form' : 'new-scene'} onSubmit=${save}
      onKeyDown=${(e) => { if (e.key === 'Escape' && scene) { e.preventDefault(); onDone(); } }}
      aria-label=${scene ? `Edit scene ${scene.sceneNumber}` : 'New scene'}>
    ${!scene && html`<h3>Add a scene</h3>`}
    <${Field} label=${scene ? 'Scene title' : 'New scene title'} name="title" error=${form.error}>
      ${(id) => html`<input id=${id} value=${title} maxlength=${TITLE_MAX} required
        onInput=${(e) => setTitle(e.currentTarget.value)} autocomplete="off" />`}
    </${Field}>
    <${Field} label=${scene ? 'Scene description' : 'New scene description'} name="description" error=${form.error}
        hint="What happens in it (optional).">
      ${(id) => html`<textarea id=${id} rows="3" value=${description} onInput=${(e) => setDescription(e.currentTarget.value)}></textarea>`}
    </${Field}>
    ${form.error && !(form.error instanceof UserErrors && form.error.errors.every((e) => e.field)) && html`<${ErrorBox} error=${form.error} title="Not saved" />`}
    <div class="actions start">
      <button type="submit" class="primary" disabled=${form.busy}>${scene ? 'Save scene' : 'Add scene'}</button>
      ${scene && html`<button type="button" onClick=${onDone} aria-label=${`Cancel editing ${label}`}>Cancel</button>`}
    </div>
  </form>`;
}

function NewScene({ context }) {
  return html`<${SceneForm} context=${context} />`;
}

function ShotList({ scene, context }) {
  const [adding, setAdding] = useState(false);
  const addButton = useRef(null);
  const shots = scene.shots;
  return html`<div class="shots">
    ${shots.length === 0
      ? html`<p class="hint">No shots in this scene yet.</p>`
      : html`<ol class="shot-list" aria-label=${`Shots of scene ${scene.sceneNumber}`}>
          ${shots.map((shot, index) => html`<${ShotItem} key=${shot.id} shot=${shot} scene=${scene} index=${index}
            count=${shots.length} context=${context} />`)}
        </ol>`}
    ${!context.readOnly && (adding
      ? html`<${ShotForm} scene=${scene} context=${context} onDone=${() => { setAdding(false); focusSoon(addButton); }} />`
      : html`<button type="button" class="add-shot" ref=${addButton} onClick=${() => setAdding(true)}>Add a shot to scene ${scene.sceneNumber}</button>`)}
  </div>`;
}

function ShotItem({ shot, scene, index, count, context }) {
  const { header, readOnly, drag } = context;
  const [editing, setEditing] = useState(false);
  const editButton = useRef(null);
  const stopEditing = () => { setEditing(false); focusSoon(editButton); };
  const [deleting, setDeleting] = useState(false);
  const remove = useSubmit(context.run);
  const name = `shot ${shot.shotNumber} of scene ${scene.sceneNumber}`;
  const href = `/projects/${encodeURIComponent(header.id)}/shots/${encodeURIComponent(shot.id)}`;
  const iterations = shot.latestIterationNumber === null ? 0 : shot.latestIterationNumber + 1;
  const confirmDelete = async () => {
    const done = await remove.submit(() => mutate(DELETE_SHOT, { input: { id: shot.id } }));
    if (done) {
      setDeleting(false);
      toast(`Shot ${scene.sceneNumber}.${shot.shotNumber} deleted.`, 'success');
      context.announce(`Shot ${shot.shotNumber} of scene ${scene.sceneNumber} deleted`);
      context.reload();
      focusSoon({ current: document.getElementById('scenes-heading') });
    }
  };
  const classes = ['shot-item', drag.target === shot.id ? 'drop-target' : ''].join(' ');
  return html`<li class=${classes} data-shot-id=${shot.id}
      onDragOver=${(e) => drag.over(e, 'shot', shot.id, scene.id)} onDrop=${(e) => drag.drop(e, 'shot', shot.id, scene)}>
    <div class="item-head">
      ${!readOnly && html`<${MoveControls} name=${name} focusKey=${`shot-${shot.id}`} index=${index} count=${count}
        describedBy="reorder-help" drag=${drag} dragItem=${{ kind: 'shot', id: shot.id, sceneId: scene.id, label: `Shot ${shot.shotNumber}` }}
        onMove=${(to, focusKey) => context.moveShot(scene, shot.id, to, focusKey)} />`}
      <a class="shot-link" href=${href}><span class="number">Shot ${scene.sceneNumber}.${shot.shotNumber}</span>${shot.description ? `: ${shot.description}` : ''}</a>
      ${shot.selectedImage && html`<span class="badge badge-ok">Master chosen</span>`}
      ${!readOnly && !editing && html`<span class="item-actions">
        <button type="button" ref=${editButton} onClick=${() => setEditing(true)} aria-label=${`Edit ${name}`}>Edit</button>
        <button type="button" onClick=${() => setDeleting(true)} aria-label=${`Delete ${name}`}>Delete</button>
      </span>`}
    </div>
    ${editing
      ? html`<${ShotForm} shot=${shot} scene=${scene} context=${context} onDone=${stopEditing} />`
      : shot.initialPrompt && html`<p class="prompt"><span class="hint">Prompt:</span> ${shot.initialPrompt}</p>`}
    <${ConfirmDialog} open=${deleting} title=${`Delete shot ${scene.sceneNumber}.${shot.shotNumber}?`}
      onClose=${() => { setDeleting(false); remove.setError(null); }} onConfirm=${confirmDelete}
      busy=${remove.busy} error=${remove.error} confirmLabel="Delete shot"
      consequences=${html`<p>Shot ${shot.shotNumber} of scene ${scene.sceneNumber}${shot.description ? `, “${shot.description}”,` : ''} will be deleted
        ${iterations ? ` with its ${plural(iterations, 'iteration')} of images${shot.selectedImage ? ', its chosen master and its clip' : ''}` : ''}.
        The shots after it in the scene move up one. This cannot be undone.</p>`} />
  </li>`;
}

function ShotForm({ shot, scene, context, onDone }) {
  const [description, setDescription] = useState(shot?.description ?? '');
  const [prompt, setPrompt] = useState(shot?.initialPrompt ?? '');
  const [opened] = useState(shot);
  const form = useSubmit(context.run);
  const first = useRef(null);
  useEffect(() => { first.current?.focus(); }, []);
  const save = async (event) => {
    event.preventDefault();
    const done = await form.submit(async () => {
      const fields = { description: orNull(description), initialPrompt: orNull(prompt) };
      if (shot) {
        // Only what changed since the form opened (see SceneForm).
        const input = { id: shot.id };
        if (fields.description !== orNull(opened.description ?? '')) input.description = fields.description;
        if (fields.initialPrompt !== orNull(opened.initialPrompt ?? '')) input.initialPrompt = fields.initialPrompt;
        if (Object.keys(input).length > 1) await mutate(UPDATE_SHOT, { input });
      } else {
        const payload = await mutate(CREATE_SHOT, { input: { sceneId: scene.id, ...fields } });
        context.announce(`Shot ${payload.shot.shotNumber} added to scene ${scene.sceneNumber}`);
      }
    });
    if (done) {
      context.reload();
      onDone();
    }
  };
  const what = shot ? `shot ${scene.sceneNumber}.${shot.shotNumber}` : `new shot of scene ${scene.sceneNumber}`;
  return html`<form class="inline-form" onSubmit=${save} aria-label=${shot ? `Edit ${what}` : `New shot of scene ${scene.sceneNumber}`}
      onKeyDown=${(e) => { if (e.key === 'Escape') { e.preventDefault(); onDone(); } }}>
    <${Field} label="Shot description" name="description" error=${form.error} hint="What the shot shows.">
      ${(id) => html`<input id=${id} ref=${first} value=${description} autocomplete="off"
        onInput=${(e) => setDescription(e.currentTarget.value)} />`}
    </${Field}>
    <${Field} label="Initial prompt" name="initialPrompt" error=${form.error}
        hint="The prompt of its first images (optional; you can write it in the iterator).">
      ${(id) => html`<textarea id=${id} rows="2" value=${prompt} onInput=${(e) => setPrompt(e.currentTarget.value)}></textarea>`}
    </${Field}>
    ${form.error && !(form.error instanceof UserErrors && form.error.errors.every((e) => e.field)) && html`<${ErrorBox} error=${form.error} title="Not saved" />`}
    <div class="actions start">
      <button type="submit" class="primary" disabled=${form.busy}>${shot ? 'Save shot' : 'Add shot'}</button>
      <button type="button" onClick=${onDone} aria-label=${`Cancel ${shot ? `editing ${what}` : `adding a shot to scene ${scene.sceneNumber}`}`}>Cancel</button>
    </div>
  </form>`;
}
