// The prompt planner (/projects/:projectId): the project's title, its prompt and the
// brain dump, saved as the person types.
//
// No typed text is lost: every change goes to localStorage at once (per project) and
// to the server after a pause (updateProject); the local copy is dropped only once
// the server has the same text. On load, a local copy newer than the server's
// `updatedAt` is restored and saved. Leaving the page sends a last save that
// outlives it (fetch with `keepalive`).
//
// Someone else's change (a PROJECT_UPDATED event) is merged field by field: a field
// the person has not touched takes the new text at once; one they are in keeps its
// text (a field they only focused takes the new text when they leave it).
import { html, useState, useEffect, useRef, useCallback, useSignalEffect, useId } from '../lib.js';
import { gql, mutate, session, UserErrors, describeError } from '../api.js';
import { ProjectShell } from '../project.js';
import { navigate } from '../router.js';
import { ErrorBox, Loading, toast } from '../ui.js';

const PROJECT_FIELDS = 'id title prompt promptPlannerData status updatedAt';

const PLANNER = `query Planner($id: ID!) { project(id: $id) { ${PROJECT_FIELDS} } }`;

const UPDATE = `mutation SavePlanner($input: UpdateProjectInput!) {
  updateProject(input: $input) { project { ${PROJECT_FIELDS} } userErrors { code field message } }
}`;

// The server's limits (services/validation.py): TITLE_MAX, PROMPT_MAX, PLANNER_DATA_MAX.
const TITLE_MAX = 200;
const PROMPT_MAX = 10_000;
const PLANNER_DATA_MAX = 200_000;
const SAVE_AFTER_MS = 700;
const RETRY_MAX_MS = 15_000;
const FIELDS = ['title', 'prompt', 'brainDump'];
const LABELS = { title: 'title', prompt: 'prompt', brainDump: 'brain dump' };

// -- the planner data: {"version": 1, "brainDump": "..."} plus whatever else is kept there --

/** The brain dump and the other keys of `promptPlannerData` (plain text reads as the brain dump). */
export function readPlannerData(stored) {
  if (!stored) return { brainDump: '', extra: {} };
  try {
    const parsed = JSON.parse(stored);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed) && typeof parsed.brainDump === 'string') {
      const { brainDump, version, ...extra } = parsed;
      return { brainDump, extra };
    }
  } catch {
    // not ours: a brain dump set as plain text through the API
  }
  return { brainDump: stored, extra: {} };
}

/** `promptPlannerData` holding `brainDump`, keeping the `extra` keys; null when there is nothing. */
export function writePlannerData(brainDump, extra) {
  if (!brainDump && Object.keys(extra).length === 0) return null;
  return JSON.stringify({ ...extra, version: 1, brainDump });
}

/** What the server would store for a field's text (it strips the title and the prompt). */
function normal(field, value) {
  const text = value ?? '';
  return field === 'brainDump' ? text : text.trim();
}

function fromServer(project) {
  const { brainDump, extra } = readPlannerData(project.promptPlannerData);
  return { title: project.title, prompt: project.prompt ?? '', brainDump, extra, updatedAt: project.updatedAt };
}

/** The field's problem before sending, if any: the server would refuse it. */
function problem(field, value, extra) {
  if (field === 'title') {
    const length = value.trim().length;
    if (!length) return 'A project needs a title. Type one to save.';
    if (length > TITLE_MAX) return `The title is ${length} characters; shorten it to ${TITLE_MAX} to save.`;
  }
  if (field === 'prompt' && value.trim().length > PROMPT_MAX) {
    return `The prompt is ${value.trim().length} characters; shorten it to ${PROMPT_MAX} to save.`;
  }
  if (field === 'brainDump') {
    const size = (writePlannerData(value, extra) ?? '').length;
    if (size > PLANNER_DATA_MAX) return `The brain dump is too long to store (${size} of ${PLANNER_DATA_MAX} characters with its notes); shorten it to save.`;
  }
  return null;
}

// -- the local copy of unsaved text ---------------------------------------------------------

const draftKey = (projectId) => `studio.planner.${projectId}`;

function readDraft(projectId) {
  try {
    const draft = JSON.parse(localStorage.getItem(draftKey(projectId)) || 'null');
    return draft && typeof draft.at === 'number' && draft.values ? draft : null;
  } catch {
    return null;
  }
}

/**
 * Keeps `values` (the fields as typed) with `base`, the server's text they were typed
 * over, so a later visit can tell whether the server changed since (see `load`).
 */
function writeDraft(projectId, values, base) {
  try {
    const from = base ? { title: base.title, prompt: base.prompt, brainDump: base.brainDump } : null;
    localStorage.setItem(draftKey(projectId), JSON.stringify({ at: Date.now(), values, base: from }));
  } catch {
    // storage full or blocked: the server save still runs
  }
}

function dropDraft(projectId) {
  localStorage.removeItem(draftKey(projectId));
}

/** Drops the local copy once the server has its text (another tab's copy may hold more). */
function dropDraftIfSaved(projectId, server) {
  const draft = readDraft(projectId);
  if (!draft || FIELDS.every((f) => typeof draft.values[f] !== 'string' || normal(f, draft.values[f]) === normal(f, server[f]))) {
    dropDraft(projectId);
  }
}

// -- the page -------------------------------------------------------------------------------

export default function PlannerPage({ projectId }) {
  return html`<${ProjectShell} projectId=${projectId}>
    ${(project, events, reloadHeader) => html`<${Planner} key=${project.id} header=${project}
      events=${events} reloadHeader=${reloadHeader} />`}
  </${ProjectShell}>`;
}

/** The planner's state machine: local values, the server's last known ones, and saving. */
function usePlannerState(projectId) {
  const [values, setValuesState] = useState(null);
  const [status, setStatus] = useState({ state: 'saved' });
  const [notices, setNotices] = useState({});
  const [loadError, setLoadError] = useState(null);
  const local = useRef(null); // the text in the fields now
  const base = useRef(null); // what the server has, as far as we know
  const held = useRef({}); // someone else's text for the focused field, applied on leaving it
  const focused = useRef(null);
  const inFlight = useRef(false);
  const timer = useRef(null);
  const retries = useRef(0);
  const saves = useRef(0); // saves begun, so a read that started before one is known stale

  const setValues = (next) => {
    local.current = next;
    setValuesState(next);
  };
  const dirtyFields = () => (local.current && base.current
    ? FIELDS.filter((f) => normal(f, local.current[f]) !== normal(f, base.current[f]))
    : []);

  const inputFor = (fields) => {
    const input = { id: projectId };
    for (const field of fields) {
      if (field === 'brainDump') input.promptPlannerData = writePlannerData(local.current.brainDump, base.current.extra);
      else if (field === 'prompt') input.prompt = local.current.prompt.trim() ? local.current.prompt : null;
      else input.title = local.current.title;
    }
    return input;
  };

  /** Takes in the server's project: after our save (`sent` fields) or someone else's change. */
  const absorb = (project, sent = []) => {
    const server = fromServer(project);
    const next = { ...local.current };
    const told = {};
    for (const field of FIELDS) {
      const theirs = server[field];
      if (sent.includes(field)) {
        base.current[field] = theirs;
        continue;
      }
      if (normal(field, theirs) === normal(field, base.current[field])) continue;
      const untouched = normal(field, next[field]) === normal(field, base.current[field]);
      if (untouched && focused.current !== field) {
        next[field] = theirs;
        base.current[field] = theirs;
        delete held.current[field];
      } else if (untouched) {
        held.current[field] = theirs;
        told[field] = `Someone else changed the ${LABELS[field]}; their text shows when you leave this field.`;
      } else {
        base.current[field] = theirs;
        told[field] = `Someone else changed the ${LABELS[field]} while you were typing; your text is kept and saved over theirs.`;
      }
    }
    base.current.extra = server.extra;
    base.current.updatedAt = server.updatedAt;
    setValues(next);
    if (Object.keys(told).length) setNotices((n) => ({ ...n, ...told }));
  };

  const save = useCallback(async () => {
    clearTimeout(timer.current);
    if (!local.current || inFlight.current) return;
    const dirty = dirtyFields();
    const refused = {};
    for (const field of dirty) {
      const why = problem(field, local.current[field], base.current.extra);
      if (why) refused[field] = why;
    }
    const sendable = dirty.filter((f) => !refused[f]);
    if (!sendable.length) {
      if (dirty.length) setStatus({ state: 'invalid', reason: Object.values(refused)[0], fields: refused });
      else {
        dropDraftIfSaved(projectId, base.current);
        setStatus({ state: 'saved' });
      }
      return;
    }
    inFlight.current = true;
    saves.current += 1;
    setStatus({ state: 'saving', fields: refused });
    try {
      const payload = await mutate(UPDATE, { input: inputFor(sendable) });
      retries.current = 0;
      absorb(payload.project, sendable);
      inFlight.current = false;
      const left = dirtyFields();
      if (left.length === 0) {
        dropDraftIfSaved(projectId, base.current);
        setStatus({ state: 'saved' });
      } else if (left.every((f) => refused[f])) {
        setStatus({ state: 'invalid', reason: Object.values(refused)[0], fields: refused });
      } else {
        timer.current = setTimeout(save, SAVE_AFTER_MS);
      }
    } catch (error) {
      inFlight.current = false;
      if (error instanceof UserErrors) {
        // A refusal retrying cannot fix (a lost right, the project gone): say it, keep the text.
        setStatus({ state: 'refused', reason: describeError(error), error });
        return;
      }
      const wait = Math.min(1000 * 2 ** retries.current, RETRY_MAX_MS);
      retries.current += 1;
      setStatus({ state: 'retrying', reason: describeError(error) });
      timer.current = setTimeout(save, wait);
    }
  }, [projectId]);

  const edit = (field, value) => {
    const next = { ...local.current, [field]: value };
    setValues(next);
    writeDraft(projectId, { title: next.title, prompt: next.prompt, brainDump: next.brainDump }, base.current);
    if (field in held.current) {
      // They type over someone else's change they have not seen yet: theirs is dropped.
      delete held.current[field];
      setNotices((n) => ({ ...n, [field]: `Someone else changed the ${LABELS[field]}; your text is kept and saved over theirs.` }));
    }
    setStatus((s) => (s.state === 'retrying' || s.state === 'saving' ? s : { state: 'pending' }));
    clearTimeout(timer.current);
    timer.current = setTimeout(save, SAVE_AFTER_MS);
  };

  const focus = (field) => { focused.current = field; };
  const blur = (field) => {
    if (focused.current === field) focused.current = null;
    if (field in held.current) {
      const theirs = held.current[field];
      delete held.current[field];
      if (normal(field, local.current[field]) === normal(field, base.current[field])) {
        base.current[field] = theirs;
        setValues({ ...local.current, [field]: theirs });
      }
      setNotices((n) => ({ ...n, [field]: undefined }));
    }
    if (dirtyFields().length) save();
  };

  /** A last save that outlives the page (pagehide, beforeunload): fire and forget. */
  const lastSave = () => {
    if (!local.current || !base.current) return;
    const dirty = dirtyFields().filter((f) => !problem(f, local.current[f], base.current.extra));
    if (!dirty.length) return;
    const token = session.value?.token;
    fetch('/graphql', {
      method: 'POST',
      keepalive: true,
      headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ query: UPDATE, variables: { input: inputFor(dirty) } }),
    }).catch(() => {
      // Refused (over keepalive's 64 KB) or cut off: the local copy restores it on the next load.
    });
  };

  const load = useCallback(async () => {
    try {
      const data = await gql(PLANNER, { id: projectId });
      if (!data.project) throw new Error('This project is not there any more.');
      const server = fromServer(data.project);
      base.current = server;
      const draft = readDraft(projectId);
      // Unsaved text is never dropped for being older than the project (clocks differ,
      // and any change to the project moves `updatedAt`): a field whose local text differs
      // from the server's is restored. When the server's text also changed since it was
      // typed over (the draft's `base`), theirs is shown beside it, so neither is lost.
      const restored = draft
        ? FIELDS.filter((f) => typeof draft.values[f] === 'string' && normal(f, draft.values[f]) !== normal(f, server[f]))
        : [];
      if (draft && !restored.length) dropDraft(projectId);
      setValues({ title: server.title, prompt: server.prompt, brainDump: server.brainDump, ...Object.fromEntries(restored.map((f) => [f, draft.values[f]])) });
      const conflicts = restored.filter((f) => !draft.base || normal(f, draft.base[f]) !== normal(f, server[f]));
      if (conflicts.length) {
        setNotices((n) => ({
          ...n,
          ...Object.fromEntries(conflicts.map((f) => [f, `Your unsaved ${LABELS[f]} is restored and will be saved; someone changed it meanwhile to: “${server[f]}”`])),
        }));
      }
      if (restored.length) {
        toast(`Restored your unsaved ${restored.map((f) => LABELS[f]).join(', ')}; saving it now.`, 'info');
        setStatus({ state: 'pending' });
        timer.current = setTimeout(save, 0);
      }
      setLoadError(null);
    } catch (error) {
      setLoadError(error);
    }
  }, [projectId]);

  const refresh = useCallback(async () => {
    if (!base.current) return;
    const mark = saves.current;
    try {
      const data = await gql(PLANNER, { id: projectId });
      // An answer read before a save of ours ended is older than what that save
      // answered: taking it would put back the text just saved.
      const older = data.project && Date.parse(data.project.updatedAt) < Date.parse(base.current.updatedAt);
      if (data.project && !older && !inFlight.current && mark === saves.current) absorb(data.project);
    } catch {
      // the next event or save tries again
    }
  }, [projectId]);

  useEffect(() => {
    load();
    const onHide = () => lastSave();
    const onVisibility = () => { if (document.visibilityState === 'hidden') save(); };
    window.addEventListener('pagehide', onHide);
    window.addEventListener('beforeunload', onHide);
    document.addEventListener('visibilitychange', onVisibility);
    return () => {
      window.removeEventListener('pagehide', onHide);
      window.removeEventListener('beforeunload', onHide);
      document.removeEventListener('visibilitychange', onVisibility);
      clearTimeout(timer.current);
      lastSave(); // leaving for another page of the app
    };
  }, [projectId]);

  return { values, status, notices, loadError, load, refresh, edit, focus, blur, save, base };
}

function SaveStatus({ status }) {
  const text = {
    saved: 'Saved',
    pending: 'Saving…',
    saving: 'Saving…',
    retrying: `Not saved: ${status.reason} — retrying`,
    invalid: `Not saved: ${status.reason}`,
    refused: `Not saved: ${status.reason}`,
  }[status.state];
  return html`<p class=${`save-status save-${status.state}`} role="status" aria-live="polite"
    data-state=${status.state}>${text}</p>`;
}

function TextField({ name, label, hint, value, multiline, rows, max, readOnly, error, notice, state }) {
  const id = useId();
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const common = {
    id, name, value, readOnly,
    'aria-describedby': [hintId, error ? errorId : null].filter(Boolean).join(' '),
    'aria-invalid': error ? 'true' : undefined,
    onInput: (e) => state.edit(name, e.currentTarget.value),
    onFocus: () => state.focus(name),
    onBlur: () => state.blur(name),
  };
  return html`<div class=${`field${error ? ' field-invalid' : ''}`}>
    <label for=${id}>${label}</label>
    ${multiline
      ? html`<textarea ...${common} rows=${rows} spellcheck="true"></textarea>`
      : html`<input ...${common} type="text" maxlength=${max} autocomplete="off" />`}
    <small class="hint" id=${hintId}>${hint} ${max ? html`<span class="count">${value.length.toLocaleString()} / ${max.toLocaleString()}</span>` : ''}</small>
    ${error && html`<small class="field-error" id=${errorId}>${error}</small>`}
    ${notice && html`<small class="field-notice">${notice}</small>`}
  </div>`;
}

function Planner({ header, events, reloadHeader }) {
  const state = usePlannerState(header.id);
  const [advancing, setAdvancing] = useState(false);
  const [advanceError, setAdvanceError] = useState(null);
  const refreshTimer = useRef(null);
  useSignalEffect(() => {
    const event = events.value;
    if (event?.kind === 'PROJECT_UPDATED' && event.nodeId === header.id) {
      clearTimeout(refreshTimer.current);
      refreshTimer.current = setTimeout(() => state.refresh(), 150);
    }
  });
  useEffect(() => () => clearTimeout(refreshTimer.current), []);

  if (state.loadError) return html`<${ErrorBox} error=${state.loadError} onRetry=${state.load} />`;
  if (!state.values) return html`<${Loading} label="Loading the plan…" />`;
  const readOnly = header.team.viewerRole === 'VIEWER';
  const { values, status } = state;
  const fieldErrors = status.fields ?? {};
  const scenesHref = `/projects/${encodeURIComponent(header.id)}/scenes`;

  const advance = async () => {
    setAdvancing(true);
    setAdvanceError(null);
    await state.save();
    try {
      await mutate(UPDATE, { input: { id: header.id, status: 'SCENES_SETUP' } });
      reloadHeader();
      navigate(scenesHref);
    } catch (error) {
      setAdvanceError(error);
      setAdvancing(false);
    }
  };

  return html`<section class="page planner" aria-labelledby="planner-heading">
    <div class="planner-head">
      <h2 id="planner-heading">Prompt planner</h2>
      <${SaveStatus} status=${status} />
    </div>
    ${readOnly && html`<p class="hint">You are a viewer in this team: you can read the plan but not change it.</p>`}
    ${status.state === 'refused' && html`<${ErrorBox} error=${status.error} title="Your changes are not saved yet"
      onRetry=${() => state.save()} />`}
    <form class="planner-form" onSubmit=${(e) => { e.preventDefault(); state.save(); }}>
      <${TextField} name="title" label="Title" state=${state} value=${values.title} max=${TITLE_MAX}
        readOnly=${readOnly} error=${fieldErrors.title} notice=${state.notices.title}
        hint="The project's name, 1 to 200 characters." />
      <${TextField} name="prompt" label="Prompt" state=${state} value=${values.prompt} max=${PROMPT_MAX}
        multiline rows="5" readOnly=${readOnly} error=${fieldErrors.prompt} notice=${state.notices.prompt}
        hint="What the video is about, in a few sentences: the idea the scenes and shots are made from." />
      <${TextField} name="brainDump" label="Brain dump" state=${state} value=${values.brainDump}
        multiline rows="12" readOnly=${readOnly} error=${fieldErrors.brainDump} notice=${state.notices.brainDump}
        hint="Everything else on your mind: moods, references, characters, lines of dialogue. Kept with the project as you type." />
    </form>
    <div class="next-step">
      <h3>Next step</h3>
      <p>When the idea is down, split it into scenes and their shots.</p>
      <div class="actions start">
        ${header.status === 'PROMPT_PLANNING' && !readOnly && html`<button type="button" class="primary"
          disabled=${advancing} onClick=${advance}>${advancing ? 'Moving on…' : 'Planning done: set up scenes'}</button>`}
        <a class=${header.status === 'PROMPT_PLANNING' && !readOnly ? 'button' : 'button primary'} href=${scenesHref}>Set up scenes</a>
      </div>
      <${ErrorBox} error=${advanceError} title="Could not move the project on" />
    </div>
  </section>`;
}
