// The storyboard (/projects/:projectId/storyboard): every scene's shots in order with
// their master image, each shot's clip animated one at a time or all at once, live.
//
// The shots come from the project's scenes (so a shot without a master shows too,
// with a link to choose one), read again when the project's feed says scenes or shots
// changed. Their selections come from the `animationStatus` feed, whose every message
// holds the whole storyboard as it is now. Finished clips play in place, and "Play
// storyboard" plays them one after another in order. The API gives a clip's stage
// (PENDING, PROCESSING, COMPLETE...), not a percentage, so a clip's bar shows its
// stage: queued, animating, ready.
import { html, useState, useEffect, useRef, useMemo, useId } from '../lib.js';
import { gql, useQuery, mutate } from '../api.js';
import { useFeed } from '../live.js';
import { ProjectShell } from '../project.js';
import { ConfirmDialog, Dialog, ErrorBox, Field, Loading, Empty, Progress, toast } from '../ui.js';

const CLIP = `fragment StoryboardClip on StoryboardSelection {
  id animationStatus model error updatedAt animatedVideoUrl
  shot { id } selectedImage { id imageUrl }
}`;

const STORYBOARD = `query Storyboard($id: ID!) {
  project(id: $id) {
    id
    scenes { id sceneNumber title shots { id shotNumber description storyboardSelection { ...StoryboardClip } } }
  }
  generationModels {
    key kinds defaultFor description
    parameters { name type default description minimum maximum choices maxLength }
  }
}
${CLIP}`;

const ANIMATION_STATUS = `subscription StoryboardFeed($projectId: ID!, $after: String) {
  animationStatus(projectId: $projectId, after: $after) {
    cursor
    selections { ...StoryboardClip }
  }
}
${CLIP}`;

const FRESH_CLIP = `query FreshClip($id: ID!) {
  node(id: $id) { ... on StoryboardSelection { id animatedVideoUrl } }
}`;

const ERRORS = 'userErrors { code field message }';
const ANIMATE_SHOT = `mutation AnimateShot($input: AnimateShotInput!) {
  animateShot(input: $input) { selection { ...StoryboardClip } ${ERRORS} }
}
${CLIP}`;
const ANIMATE_STORYBOARD = `mutation AnimateStoryboard($input: AnimateStoryboardInput!) {
  animateStoryboard(input: $input) { selections { ...StoryboardClip } ${ERRORS} }
}
${CLIP}`;
const CANCEL = `mutation CancelAnimation($input: GenerationRefInput!) {
  cancelGeneration(input: $input) { selection { ...StoryboardClip } ${ERRORS} }
}
${CLIP}`;
const RETRY = `mutation RetryAnimation($input: GenerationRefInput!) {
  retryGeneration(input: $input) { selection { ...StoryboardClip } ${ERRORS} }
}
${CLIP}`;

// What a clip's stage says and how far its bar goes (of 3 stages).
const STAGES = {
  NONE: { text: 'Not animated', step: 0 },
  PENDING: { text: 'Queued', step: 1 },
  PROCESSING: { text: 'Animating…', step: 2 },
  COMPLETE: { text: 'Ready', step: 3 },
  FAILED: { text: 'Failed', step: 0 },
  CANCELED: { text: 'Canceled', step: 0 },
};
const ACTIVE = new Set(['PENDING', 'PROCESSING']);
// Changes to the project's structure that the scenes and shots must be read again for.
const STRUCTURE = /^(SCENE|SHOT)_(CREATED|UPDATED|DELETED)$/;

export default function StoryboardPage({ projectId }) {
  return html`<${ProjectShell} projectId=${projectId}>
    ${(project, events) => html`<${Storyboard} project=${project} events=${events} />`}
  </${ProjectShell}>`;
}

function Storyboard({ project, events }) {
  const page = useQuery(STORYBOARD, { id: project.id }, [project.id]);
  // The storyboard as the feed last sent it: {byShot: Map(shotId -> selection)}. The
  // counts are made here from the shots shown, since a shot added or deleted changes
  // them without a message on this feed.
  const [live, setLive] = useState(null);
  const [settings, setSettings] = useState(null);
  const [playing, setPlaying] = useState(false);
  const [allError, setAllError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [confirmAll, setConfirmAll] = useState(false);
  const [showSettings, setShowSettings] = useState(false);
  // The server ends the feed with an error (access lost...): say so, offer to reopen it.
  const [feedError, setFeedError] = useState(null);
  const [feedTurn, setFeedTurn] = useState(0);
  useFeed(ANIMATION_STATUS, { projectId: project.id }, {
    onEvent: (event) => {
      setFeedError(null);
      setLive({ byShot: new Map(event.selections.map((s) => [s.shot.id, s])) });
    },
    onError: (error) => setFeedError(error),
  }, [project.id, feedTurn]);
  // Scenes and shots added, renamed, moved or deleted elsewhere: read them again.
  const pending = useRef(null);
  useEffect(() => {
    const event = events.value;
    if (!event || !STRUCTURE.test(event.kind)) return;
    clearTimeout(pending.current);
    pending.current = setTimeout(() => page.reload(), 250);
  }, [events.value]);
  useEffect(() => () => clearTimeout(pending.current), []);

  const videoModels = useMemo(
    () => (page.data?.generationModels ?? []).filter((m) => m.kinds.includes('IMAGE_TO_VIDEO')),
    [page.data],
  );
  useEffect(() => {
    if (!settings && videoModels.length) {
      const chosen = videoModels.find((m) => m.defaultFor.includes('IMAGE_TO_VIDEO')) ?? videoModels[0];
      setSettings({ model: chosen.key, values: {}, onlyMissing: true });
    }
  }, [videoModels]);

  if (page.error && !page.data) return html`<${ErrorBox} error=${page.error} onRetry=${page.reload} />`;
  if (!page.data) return html`<${Loading} label="Loading the storyboard…" />`;
  const scenes = page.data.project?.scenes ?? [];
  const selectionOf = (shot) => (live ? live.byShot.get(shot.id) ?? null : shot.storyboardSelection);
  const order = scenes.flatMap((scene) => scene.shots.map((shot) => ({ scene, shot, selection: selectionOf(shot) })));
  const total = order.length;
  const ready = order.filter((o) => o.selection?.animationStatus === 'COMPLETE').length;
  // As the API defines it: scenes, each with shots, and every shot's clip made.
  const complete = scenes.length > 0 && scenes.every((scene) => scene.shots.length > 0) && ready === total;
  const running = order.filter((o) => ACTIVE.has(o.selection?.animationStatus)).length;
  const withMaster = order.filter((o) => o.selection).length;
  const playable = order.filter((o) => o.selection?.animationStatus === 'COMPLETE' && o.selection.animatedVideoUrl);
  const model = videoModels.find((m) => m.key === settings?.model);
  const canEdit = project.team.viewerRole !== 'VIEWER';
  // A refusal is about the settings it was given: changing them clears it.
  const changeSettings = (next) => {
    setSettings(next);
    setAllError(null);
  };

  const animateAll = async () => {
    setBusy(true);
    setAllError(null);
    try {
      const payload = await mutate(ANIMATE_STORYBOARD, {
        input: { projectId: project.id, ...requestOf(model, settings), onlyMissing: settings.onlyMissing },
      });
      const count = payload.selections.length;
      toast(count
        ? `Animating ${count} ${count === 1 ? 'clip' : 'clips'}.`
        : 'Nothing to animate: every shot with a master has a clip or is being animated. Untick "Only shots without a finished clip" to make them all again.',
      count ? 'success' : 'info', 8000);
      setConfirmAll(false);
    } catch (error) {
      setAllError(error);
      // A refusal of a setting is shown next to it: show the settings.
      if (error.errors?.some((e) => e.field?.includes('params') || e.field?.includes('model'))) setShowSettings(true);
    } finally {
      setBusy(false);
    }
  };
  const submit = (event) => {
    event.preventDefault();
    // Making finished clips again replaces them: ask first.
    if (!settings.onlyMissing && ready > 0) setConfirmAll(true);
    else animateAll();
  };

  return html`<section class="page storyboard" aria-labelledby="storyboard-title">
    <h2 id="storyboard-title">Storyboard</h2>
    <div class="storyboard-summary" data-ready=${ready} data-total=${total}>
      <div role="status" aria-live="polite">
        <${Progress} value=${total ? ready / total : 0} label=${`${ready} of ${total} clips ready`} />
        <p class="storyboard-counts">
          ${running ? `${running} animating now. ` : ''}
          ${withMaster < order.length ? `${order.length - withMaster} ${order.length - withMaster === 1 ? 'shot has' : 'shots have'} no master image yet. ` : ''}
          ${complete ? 'Every shot is animated: the project is complete.' : ''}
        </p>
      </div>
      <div class="storyboard-play">
        <button type="button" disabled=${playable.length === 0} onClick=${() => setPlaying(true)}
          aria-describedby=${playable.length === 0 ? 'play-hint' : undefined}>Play storyboard</button>
        ${playable.length === 0 && html`<small id="play-hint" class="hint">Plays the finished clips in order, once there are some.</small>`}
      </div>
    </div>
    ${feedError && html`<${ErrorBox} title="Live updates stopped" error=${{ message: `${feedError.message ?? 'The feed ended.'} What is shown may be out of date.` }}
      onRetry=${() => { setFeedError(null); setFeedTurn((n) => n + 1); }} />`}
    ${!canEdit && html`<p class="hint">You can watch this storyboard; animating it needs an editor's role in ${project.team.name}.</p>`}
    ${settings && canEdit && html`<form class="animation-settings" novalidate onSubmit=${submit} aria-label="Animate the storyboard">
      <div class="storyboard-actions">
        <button type="submit" class="primary" disabled=${busy || withMaster === 0}>${busy ? 'Starting…' : 'Animate all'}</button>
        <label class="check">
          <input type="checkbox" checked=${settings.onlyMissing}
            onChange=${(e) => changeSettings({ ...settings, onlyMissing: e.currentTarget.checked })} />
          Only shots without a finished clip
        </label>
        ${withMaster === 0 && html`<small class="hint">Choose a master image for a shot first.</small>`}
      </div>
      <details class="settings-details" open=${showSettings} onToggle=${(e) => setShowSettings(e.currentTarget.open)}>
        <summary>Animation settings <span class="hint">(${settings.model}${Object.keys(settings.values).length ? ', changed' : ''})</span></summary>
        <${ModelSettings} models=${videoModels} settings=${settings} onChange=${changeSettings} error=${allError} />
      </details>
      <${ErrorBox} error=${confirmAll ? null : allError} title="The storyboard could not be animated" />
    </form>`}
    ${scenes.length === 0 && html`<${Empty}>This project has no scenes yet.
      <a href=${`/projects/${encodeURIComponent(project.id)}/scenes`}>Set up scenes and shots</a> first.</${Empty}>`}
    ${scenes.map((scene) => html`<section key=${scene.id} class="storyboard-scene" aria-labelledby=${`scene-${scene.id}`}>
      <h3 id=${`scene-${scene.id}`}>Scene ${scene.sceneNumber}: ${scene.title}</h3>
      ${scene.shots.length === 0
        ? html`<p class="hint">No shots in this scene yet.</p>`
        : html`<ol class="clip-list">${scene.shots.map((shot) => html`<li key=${shot.id}>
            <${ClipCard} projectId=${project.id} scene=${scene} shot=${shot} selection=${selectionOf(shot)}
              canEdit=${canEdit} request=${() => requestOf(model, settings)} />
          </li>`)}</ol>`}
    </section>`)}
    <${Player} open=${playing} clips=${playable} onClose=${() => setPlaying(false)} />
    <${ConfirmDialog} open=${confirmAll} title="Animate every shot again?" confirmLabel="Animate all again"
      busy=${busy} error=${allError} onConfirm=${animateAll} onClose=${() => { setConfirmAll(false); setAllError(null); }}
      consequences=${html`<p>${ready} finished ${ready === 1 ? 'clip leaves' : 'clips leave'} the storyboard at once, and each shot's new clip shows when it is ready.
        The clips made so far stay in the library.</p>`} />
  </section>`;
}

/** The model and params to send, from the settings form; params only as changed. */
function requestOf(model, settings) {
  if (!model) return {};
  const params = {};
  for (const parameter of model.parameters) {
    if (!(parameter.name in settings.values)) continue;
    params[parameter.name] = valueOf(parameter, settings.values[parameter.name]);
  }
  return { model: model.key, params };
}

/** A form value as the parameter's JSON type; what is not a number is sent as typed, for the server to refuse. */
function valueOf(parameter, raw) {
  if (parameter.type === 'ENUM') return parameter.choices[Number(raw)];
  if (parameter.type === 'BOOLEAN') return Boolean(raw);
  if (parameter.type === 'INT' && /^\s*-?\d+\s*$/.test(raw)) return Number(raw);
  if (parameter.type === 'FLOAT' && raw.trim() !== '' && Number.isFinite(Number(raw))) return Number(raw);
  return raw;
}

/** The model to animate with, and a field for each of its parameters (from generationModels). */
function ModelSettings({ models, settings, onChange, error }) {
  const model = models.find((m) => m.key === settings.model);
  const set = (name, value) => onChange({ ...settings, values: { ...settings.values, [name]: value } });
  return html`<fieldset class="model-settings">
    <legend class="visually-hidden">Animation settings</legend>
    <p class="hint">Used by "Animate all" and by each shot's "Animate".</p>
    <${Field} label="Model" name="model" error=${error} hint=${model?.description}>
      ${(id) => html`<select id=${id} value=${settings.model}
          onChange=${(e) => onChange({ ...settings, model: e.currentTarget.value, values: {} })}>
        ${models.map((m) => html`<option key=${m.key} value=${m.key}>${m.key}</option>`)}
      </select>`}
    </${Field}>
    <div class="model-params">
      ${model?.parameters.map((p) => html`<${ParamField} key=${`${model.key}.${p.name}`} parameter=${p}
        value=${settings.values[p.name]} onInput=${(v) => set(p.name, v)} error=${error} />`)}
    </div>
  </fieldset>`;
}

function ParamField({ parameter: p, value, onInput, error }) {
  const label = p.name.replace(/_/g, ' ');
  if (p.type === 'BOOLEAN') {
    const checked = value === undefined ? Boolean(p.default) : value;
    return html`<${Field} label=${label} name=${p.name} error=${error} hint=${p.description}>
      ${(id) => html`<input id=${id} type="checkbox" checked=${checked} onChange=${(e) => onInput(e.currentTarget.checked)} />`}
    </${Field}>`;
  }
  if (p.type === 'ENUM') {
    const index = value === undefined ? p.choices.findIndex((c) => c === p.default) : Number(value);
    return html`<${Field} label=${label} name=${p.name} error=${error} hint=${p.description}>
      ${(id) => html`<select id=${id} value=${String(index)} onChange=${(e) => onInput(e.currentTarget.value)}>
        ${p.choices.map((c, i) => html`<option key=${String(c)} value=${String(i)}>${String(c)}</option>`)}
      </select>`}
    </${Field}>`;
  }
  const shown = value === undefined ? String(p.default ?? '') : value;
  const numeric = p.type === 'INT' || p.type === 'FLOAT';
  const limits = numeric && [p.minimum, p.maximum].some((x) => x !== null)
    ? ` (${p.minimum ?? '…'} to ${p.maximum ?? '…'})` : '';
  return html`<${Field} label=${label} name=${p.name} error=${error} hint=${p.description + limits}>
    ${(id) => html`<input id=${id} type=${numeric ? 'number' : 'text'} value=${shown}
      min=${p.minimum ?? undefined} max=${p.maximum ?? undefined} step=${p.type === 'INT' ? 1 : numeric ? 'any' : undefined}
      maxLength=${p.maxLength ?? undefined} onInput=${(e) => onInput(e.currentTarget.value)} />`}
  </${Field}>`;
}

/** `text` ending in a full stop. */
function sentence(text) {
  return /[.!?]$/.test(text.trim()) ? text.trim() : `${text.trim()}.`;
}

/** `url` as first given for as long as `key` stays the same: a fresh signed link for the same file must not reload a playing video. */
function useSteady(url, key) {
  const held = useRef({ key: null, url: null });
  if (held.current.key !== key || !held.current.url) held.current = { key, url };
  return held.current.url;
}

function ClipCard({ projectId, scene, shot, selection, canEdit, request }) {
  const name = `scene ${scene.sceneNumber}, shot ${shot.shotNumber}`;
  const headingId = useId();
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const status = selection?.animationStatus ?? 'NONE';
  const stage = STAGES[status] ?? STAGES.NONE;
  const poster = useSteady(selection?.selectedImage.imageUrl, selection?.selectedImage.id);
  const steady = useSteady(selection?.animatedVideoUrl, `${selection?.id}@${selection?.updatedAt}`);
  // A link that stopped working (it expired): ask for a fresh one, once per clip.
  const [fresh, setFresh] = useState(null);
  const [broken, setBroken] = useState(null);
  const clip = fresh && fresh.from === steady ? fresh.url : steady;
  const refreshClip = async () => {
    if (!selection) return;
    if (fresh && fresh.from === steady) {
      setBroken(clip);
      return;
    }
    try {
      const data = await gql(FRESH_CLIP, { id: selection.id });
      setFresh({ from: steady, url: data.node?.animatedVideoUrl ?? steady });
    } catch {
      setFresh({ from: steady, url: steady });
    }
  };
  const shotLink = `/projects/${encodeURIComponent(projectId)}/shots/${encodeURIComponent(shot.id)}`;
  const act = async (mutation, input) => {
    setBusy(true);
    setError(null);
    try {
      await mutate(mutation, { input });
      setConfirming(false);
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  const animate = () => act(ANIMATE_SHOT, { selectionId: selection.id, ...request() });
  let media;
  if (!selection) {
    media = html`<div class="clip-media clip-missing">
      <p>No master image yet.</p>
      <a href=${shotLink}>Choose a master image<span class="visually-hidden"> for ${name}</span></a>
    </div>`;
  } else if (status === 'COMPLETE' && clip) {
    media = html`<video class="clip-media" controls preload="none" playsinline poster=${poster} src=${clip}
        aria-label=${`Clip of ${name}`} onError=${refreshClip}>
      <a href=${clip}>Download the clip of ${name}</a>
    </video>
    ${broken === clip && html`<p class="clip-problem">This clip does not play here. <a href=${clip} download>Download it</a>,
      or reload the page to try again.</p>`}`;
  } else {
    media = html`<img class="clip-media" src=${poster} alt=${`Master image of ${name}`} loading="lazy" decoding="async" />`;
  }
  return html`<article class="clip-card" aria-labelledby=${headingId} data-shot-id=${shot.id} data-status=${status}>
    <h4 id=${headingId}>Shot ${shot.shotNumber}</h4>
    ${media}
    ${shot.description && html`<p class="clip-description">${shot.description}</p>`}
    ${selection && html`<div class="clip-progress">
      <progress max="100" value=${Math.round((stage.step * 100) / 3)} aria-label=${`Clip progress of ${name}: ${stage.text}`}></progress>
      <span class=${`clip-status clip-status-${status.toLowerCase()}`}>${stage.text}</span>
    </div>`}
    ${status === 'FAILED' && html`<p class="clip-problem" role="alert">
      ${sentence(selection.error || 'The animation failed')} Retry it, or choose another model in the animation settings and animate again.
    </p>`}
    ${status === 'CANCELED' && html`<p class="clip-problem">The animation was canceled. Retry to start it again.</p>`}
    ${selection && canEdit && html`<div class="clip-actions">
      ${ACTIVE.has(status)
        ? html`<button type="button" disabled=${busy} aria-label=${`Cancel the animation of ${name}`}
            onClick=${() => act(CANCEL, { id: selection.id })}>Cancel</button>`
        : html`<button type="button" disabled=${busy} aria-label=${`${status === 'COMPLETE' ? 'Animate again' : 'Animate'} ${name}`}
            onClick=${status === 'COMPLETE' ? () => setConfirming(true) : animate}>${status === 'COMPLETE' ? 'Animate again' : 'Animate'}</button>`}
      ${(status === 'FAILED' || status === 'CANCELED') && html`<button type="button" class="primary" disabled=${busy}
          aria-label=${`Retry the animation of ${name}`} onClick=${() => act(RETRY, { id: selection.id })}>Retry</button>`}
      <a href=${shotLink} class="clip-shot-link">Change master<span class="visually-hidden"> of ${name}</span></a>
    </div>`}
    <${ErrorBox} error=${confirming ? null : error} title=${`Could not change the clip of ${name}`} />
    <${ConfirmDialog} open=${confirming} title=${`Animate ${name} again?`} confirmLabel="Animate again"
      busy=${busy} error=${error} onConfirm=${animate} onClose=${() => { setConfirming(false); setError(null); }}
      consequences=${html`<p>Its finished clip leaves the storyboard at once, and the new one shows when it is ready.
        The clip made so far stays in the library.</p>`} />
  </article>`;
}

/** The finished clips one after another, in storyboard order, in a dialog. */
function Player({ open, clips, onClose }) {
  const [at, setAt] = useState(0);
  const [ended, setEnded] = useState(false);
  const [speed, setSpeed] = useState('1');
  const [blocked, setBlocked] = useState(false);
  const video = useRef(null);
  useEffect(() => {
    if (open) {
      setAt(0);
      setEnded(false);
    }
  }, [open]);
  const index = Math.min(at, Math.max(0, clips.length - 1));
  const current = clips[index];
  const src = current?.selection.animatedVideoUrl;
  useEffect(() => {
    const element = video.current;
    if (!open || !element || ended) return;
    element.playbackRate = Number(speed);
    element.play().then(() => setBlocked(false)).catch(() => setBlocked(true));
  }, [open, src, ended]);
  useEffect(() => {
    if (video.current) video.current.playbackRate = Number(speed);
  }, [speed]);
  const go = (next) => {
    setEnded(false);
    setAt(Math.max(0, Math.min(clips.length - 1, next)));
  };
  const onEnded = () => {
    if (index + 1 < clips.length) go(index + 1);
    else setEnded(true);
  };
  const label = current ? `Scene ${current.scene.sceneNumber}, shot ${current.shot.shotNumber}` : '';
  return html`<${Dialog} open=${open} onClose=${onClose} title="Play storyboard" className="player-dialog">
    ${current && html`<div class="player">
      <p class="player-caption" aria-live="polite" data-index=${index}>
        ${ended ? 'End of the storyboard.' : `Clip ${index + 1} of ${clips.length}: ${label}`}
      </p>
      <video ref=${video} class="player-video" controls playsinline src=${src}
        poster=${current.selection.selectedImage.imageUrl} aria-label=${`Storyboard clip ${index + 1} of ${clips.length}: ${label}`}
        onEnded=${onEnded} onLoadedMetadata=${(e) => { e.currentTarget.playbackRate = Number(speed); }}></video>
      ${blocked && !ended && html`<p class="hint">Press play to start.</p>`}
      <div class="actions player-actions">
        <label class="player-speed">Speed
          <select value=${speed} onChange=${(e) => setSpeed(e.currentTarget.value)}>
            ${['0.5', '1', '1.5', '2', '4'].map((s) => html`<option key=${s} value=${s}>${s}×</option>`)}
          </select>
        </label>
        <button type="button" disabled=${index === 0} onClick=${() => go(index - 1)}>Previous clip</button>
        <button type="button" disabled=${index + 1 >= clips.length} onClick=${() => go(index + 1)}>Next clip</button>
        ${ended && html`<button type="button" onClick=${() => go(0)}>Play again</button>`}
        <button type="button" class="primary" onClick=${onClose}>Close</button>
      </div>
    </div>`}
    ${!current && html`<p>There is no finished clip to play any more.</p>
      <div class="actions"><button type="button" class="primary" onClick=${onClose}>Close</button></div>`}
  </${Dialog}>`;
}
