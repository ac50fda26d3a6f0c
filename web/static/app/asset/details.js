// The asset's fields as a description list, and the form that edits what
// `updateAsset` changes (name, description, tags, category, mood, scene type, and for
// an ADMIN the copy and remix rights) plus its visibility (`setShareLevel`).
import { html, useState } from '../lib.js';
import { mutate, UserErrors } from '../api.js';
import { ErrorBox, Field, ago } from '../ui.js';
import { UPDATE_ASSET, SET_SHARE_LEVEL } from './queries.js';

export const LEVELS = [
  ['PRIVATE', 'Private: only its creator (and those it is shared with)'],
  ['TEAM', 'Team: every member of its team'],
  ['PUBLIC', 'Public: every signed-in user may view it'],
];
const LEVEL_NAME = { PRIVATE: 'Private', TEAM: 'Team', PUBLIC: 'Public' };
const SCENE_TYPES = ['WIDE', 'ESTABLISHING', 'MEDIUM', 'CLOSE_UP', 'EXTREME_CLOSE_UP',
  'OVER_THE_SHOULDER', 'POINT_OF_VIEW', 'TRACKING', 'AERIAL', 'STATIC'];

export const words = (value) => String(value ?? '').toLowerCase().replace(/_/g, ' ');
const sentence = (value) => { const w = words(value); return w.charAt(0).toUpperCase() + w.slice(1); };

function bytes(size) {
  if (size == null) return null;
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KB`;
  return `${(size / 1024 / 1024).toFixed(1)} MB`;
}

export function when(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  return html`<time datetime=${iso} title=${date.toLocaleString()}>${date.toLocaleString()} (${ago(iso)})</time>`;
}

function Params({ params }) {
  const entries = Object.entries(params ?? {});
  if (!entries.length) return null;
  return html`<ul class="params-list">${entries.map(([key, value]) => html`<li key=${key}>
    <code>${key}</code>: ${typeof value === 'object' ? JSON.stringify(value) : String(value)}</li>`)}</ul>`;
}

/** The asset's fields; empty ones are left out. */
export function AssetFields({ asset }) {
  const added = asset.promptDelta?.added ?? [];
  const removed = asset.promptDelta?.removed ?? [];
  const delta = added.length || removed.length ? html`
    ${added.length > 0 && html`<span class="delta-added">added: ${added.join(', ')}</span> `}
    ${removed.length > 0 && html`<span class="delta-removed">removed: ${removed.join(', ')}</span>`}` : null;
  const link = (a) => a && html`<a href=${`/library/assets/${encodeURIComponent(a.id)}`}>${a.name}</a>`;
  const rows = [
    ['Kind', sentence(asset.kind)],
    ['Status', html`<span class=${`status status-${asset.status.toLowerCase()}`} data-status=${asset.status}>${sentence(asset.status)}</span>`],
    ['Why it failed', asset.status === 'FAILED' ? asset.error : null],
    ['Description', asset.description],
    ['Prompt', asset.prompt && html`<span class="prompt">${asset.prompt}</span>`],
    ['Prompt change', delta],
    ['Model', asset.model],
    ['Parameters', Object.keys(asset.generationParams ?? {}).length ? html`<${Params} params=${asset.generationParams} />` : null],
    ['Tags', asset.tags.length ? html`<ul class="tag-list">${asset.tags.map((t) => html`<li key=${t}>${t}</li>`)}</ul>` : 'none yet'],
    ['Category', asset.category],
    ['Mood', asset.mood],
    ['Scene type', asset.sceneType && sentence(asset.sceneType)],
    ['Dimensions', asset.width && asset.height ? `${asset.width} × ${asset.height} px` : null],
    ['Duration', asset.duration != null ? `${asset.duration.toFixed(1)} s${asset.fps ? ` at ${asset.fps} fps` : ''}` : null],
    ['File', asset.mimeType && `${asset.mimeType}${asset.fileSize != null ? `, ${bytes(asset.fileSize)}` : ''}`],
    ['Visibility', LEVEL_NAME[asset.shareLevel]],
    ['Your permission', sentence(asset.viewerPermission)],
    ['Created', html`${when(asset.createdAt)}${asset.creator ? ` by ${asset.creator.name}` : ''}`],
    ['Last changed', when(asset.updatedAt)],
    ['Team', asset.team?.name],
    ['Project', asset.sourceProject && html`<a href=${`/projects/${encodeURIComponent(asset.sourceProject.id)}`}>${asset.sourceProject.title}</a>`],
    ['Lineage', `version ${asset.version} on branch “${asset.branchName}”, ${words(asset.evolutionType)}`],
    ['Step note', asset.evolutionNote],
    ['Parent', link(asset.parent)],
    ['Root', asset.root && asset.root.id !== asset.id ? link(asset.root) : null],
    ['Views', String(asset.views)],
    ['Used in projects', String(asset.usedInProjects)],
    ['Copies made', String(asset.duplicateCount)],
    ['Remixes made', String(asset.remixCount)],
    ['Starred', asset.isFavorite ? 'yes' : null],
    ['May be copied', asset.canDuplicate ? 'yes' : 'no'],
    ['May be remixed', asset.canRemix ? 'yes' : 'no'],
  ];
  return html`<dl class="asset-fields">
    ${rows.filter(([, value]) => value !== null && value !== undefined && value !== '' && value !== false)
      .map(([label, value]) => html`<div key=${label} class="asset-field"><dt>${label}</dt><dd>${value}</dd></div>`)}
  </dl>`;
}

/** Tag errors come at ["tags", index]: show them on the tags field, saying which tag. */
function onFields(error) {
  if (!(error instanceof UserErrors)) return error;
  return new UserErrors(error.errors.map((e) => (e.field?.[0] === 'tags' && e.field.length > 1
    ? { ...e, field: ['tags'], message: `Tag ${Number(e.field[1]) + 1}: ${e.message}` }
    : e)));
}

const FORM_FIELDS = ['name', 'description', 'tags', 'category', 'mood', 'sceneType', 'canDuplicate', 'canRemix', 'shareLevel'];

/** The edit form; onSaved(asset) with the asset as saved, onCancel() to close it. */
export function EditAssetForm({ asset, onSaved, onCancel }) {
  const admin = asset.viewerPermission === 'ADMIN';
  const [form, setForm] = useState(() => ({
    name: asset.name,
    description: asset.description ?? '',
    tags: asset.tags.join(', '),
    category: asset.category ?? '',
    mood: asset.mood ?? '',
    sceneType: asset.sceneType ?? '',
    canDuplicate: asset.canDuplicate,
    canRemix: asset.canRemix,
    shareLevel: asset.shareLevel,
  }));
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [opened] = useState(asset);
  const set = (key) => (event) => {
    const target = event.currentTarget;
    setForm((f) => ({ ...f, [key]: target.type === 'checkbox' ? target.checked : target.value }));
  };
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    // Only what the person changed since the form opened: a field someone else changed
    // meanwhile (the live `asset`) is not written back over theirs.
    const input = { id: asset.id };
    if (form.name !== opened.name) input.name = form.name;
    if (form.description !== (opened.description ?? '')) input.description = form.description;
    const tags = form.tags.split(',').map((t) => t.trim()).filter(Boolean);
    if (tags.join(',') !== opened.tags.join(',')) input.tags = tags;
    if (form.category !== (opened.category ?? '')) input.category = form.category;
    if (form.mood !== (opened.mood ?? '')) input.mood = form.mood;
    if (form.sceneType !== (opened.sceneType ?? '')) input.sceneType = form.sceneType || null;
    if (admin && form.canDuplicate !== opened.canDuplicate) input.canDuplicate = form.canDuplicate;
    if (admin && form.canRemix !== opened.canRemix) input.canRemix = form.canRemix;
    try {
      let saved = asset;
      if (Object.keys(input).length > 1) saved = (await mutate(UPDATE_ASSET, { input })).asset;
      if (admin && form.shareLevel !== asset.shareLevel) {
        try {
          const level = await mutate(SET_SHARE_LEVEL, { input: { assetId: asset.id, shareLevel: form.shareLevel } });
          saved = { ...saved, shareLevel: level.asset?.shareLevel ?? form.shareLevel };
        } catch (levelError) {
          // The other changes are saved; say so with the refusal, on the visibility field.
          if (levelError instanceof UserErrors) {
            throw new UserErrors(levelError.errors.map((e) => ({ ...e, field: ['shareLevel'] })));
          }
          throw levelError;
        }
      }
      onSaved(saved);
    } catch (caught) {
      setError(onFields(caught));
    } finally {
      setBusy(false);
    }
  };
  const general = error instanceof UserErrors
    ? new UserErrors(error.errors.filter((e) => !FORM_FIELDS.includes(e.field?.[e.field.length - 1])))
    : error;
  return html`<form class="asset-edit" onSubmit=${submit} aria-label="Edit details" novalidate>
    ${general && (!(general instanceof UserErrors) || general.errors.length > 0)
      && html`<${ErrorBox} error=${general} title="Not saved" />`}
    <${Field} label="Name" name="name" error=${error}>${(id) => html`<input id=${id} value=${form.name} onInput=${set('name')} required maxlength="200" />`}</${Field}>
    <${Field} label="Description" name="description" error=${error}>${(id) => html`<textarea id=${id} value=${form.description} onInput=${set('description')}></textarea>`}</${Field}>
    <${Field} label="Tags" name="tags" error=${error} hint="Separated by commas; at most 30, stored lower-case.">${(id) => html`<input id=${id} value=${form.tags} onInput=${set('tags')} />`}</${Field}>
    <div class="field-row">
      <${Field} label="Category" name="category" error=${error}>${(id) => html`<input id=${id} value=${form.category} onInput=${set('category')} maxlength="100" />`}</${Field}>
      <${Field} label="Mood" name="mood" error=${error}>${(id) => html`<input id=${id} value=${form.mood} onInput=${set('mood')} maxlength="100" />`}</${Field}>
      <${Field} label="Scene type" name="sceneType" error=${error}>${(id) => html`<select id=${id} value=${form.sceneType} onChange=${set('sceneType')}>
        <option value="">Not set</option>
        ${SCENE_TYPES.map((t) => html`<option key=${t} value=${t}>${sentence(t)}</option>`)}
      </select>`}</${Field}>
    </div>
    ${admin ? html`
      <${Field} label="Visibility" name="shareLevel" error=${error}>${(id) => html`<select id=${id} value=${form.shareLevel} onChange=${set('shareLevel')}>
        ${LEVELS.map(([value, label]) => html`<option key=${value} value=${value}>${label}</option>`)}
      </select>`}</${Field}>
      <fieldset class="rights">
        <legend>Rights</legend>
        <label><input type="checkbox" checked=${form.canDuplicate} onChange=${set('canDuplicate')} /> May be copied (duplicated)</label>
        <label><input type="checkbox" checked=${form.canRemix} onChange=${set('canRemix')} /> May be remixed and regenerated as a new version</label>
        ${[...(error instanceof UserErrors ? error.errors : [])].filter((e) => ['canDuplicate', 'canRemix'].includes(e.field?.[0]))
          .map((e) => html`<small class="field-error" role="alert" key=${e.code}>${e.message}</small>`)}
      </fieldset>`
    : html`<p class="hint">Visibility and the copy and remix rights are changed by those who hold ADMIN on it.</p>`}
    <div class="actions">
      <button type="button" onClick=${onCancel}>Cancel</button>
      <button type="submit" class="primary" disabled=${busy}>${busy ? 'Saving…' : 'Save details'}</button>
    </div>
  </form>`;
}
