// The form that makes or changes a collection (name, description, type, visibility,
// tags, category), in a dialog, and the queries both collection pages use.
import { html, useState, useEffect } from './lib.js';
import { Dialog, ErrorBox, Field } from './ui.js';

export const COLLECTION_TYPES = [
  ['CAMPAIGN', 'Campaign'],
  ['SERIES', 'Series'],
  ['CHARACTER_ARC', 'Character arc'],
  ['BRAND_KIT', 'Brand kit'],
  ['UNIVERSE', 'Universe'],
];

export const VISIBILITY = [
  ['TEAM', 'Team: its members see it'],
  ['PRIVATE', 'Private: only you'],
  ['PUBLIC', 'Public: every signed-in person'],
];

export const typeLabel = (type) => COLLECTION_TYPES.find(([key]) => key === type)?.[1] ?? type;
export const visibilityLabel = (level) => ({ TEAM: 'Team', PRIVATE: 'Private', PUBLIC: 'Public' }[level] ?? level);

export const COLLECTION_FIELDS = `id name description type tags category shareLevel viewerPermission
  itemCount updatedAt coverImage { id name thumbnailUrl } team { id name viewerRole }`;

export const CREATE_COLLECTION = `mutation CreateCollection($input: CreateCollectionInput!) {
  createCollection(input: $input) { collection { ${COLLECTION_FIELDS} } userErrors { code field message } }
}`;

export const UPDATE_COLLECTION = `mutation UpdateCollection($input: UpdateCollectionInput!) {
  updateCollection(input: $input) { collection { ${COLLECTION_FIELDS} } userErrors { code field message } }
}`;

export const DELETE_COLLECTION = `mutation DeleteCollection($input: DeleteInput!) {
  deleteCollection(input: $input) { userErrors { code field message } }
}`;

const EMPTY = { name: '', description: '', type: 'CAMPAIGN', shareLevel: 'TEAM', tags: '', category: '' };

function formOf(collection) {
  if (!collection) return EMPTY;
  return {
    name: collection.name,
    description: collection.description ?? '',
    type: collection.type,
    shareLevel: collection.shareLevel,
    tags: collection.tags.join(', '),
    category: collection.category ?? '',
  };
}

const tagList = (text) => text.split(',').map((t) => t.trim()).filter(Boolean);

/**
 * What to send: for a new collection every field; for an existing one only what changed
 * (the API clears a description, tags or category given as null, so an unchanged field
 * is left out rather than sent again).
 */
export function collectionInput(form, collection, teamId) {
  const description = form.description.trim() || null;
  const category = form.category.trim() || null;
  if (!collection) {
    return {
      teamId, name: form.name.trim(), description, type: form.type,
      shareLevel: form.shareLevel, tags: tagList(form.tags), category,
    };
  }
  const before = formOf(collection);
  const input = { id: collection.id };
  if (form.name.trim() !== before.name) input.name = form.name.trim();
  if (form.description.trim() !== before.description) input.description = description;
  if (form.type !== before.type) input.type = form.type;
  if (form.shareLevel !== before.shareLevel) input.shareLevel = form.shareLevel;
  if (tagList(form.tags).join(',') !== tagList(before.tags).join(',')) input.tags = tagList(form.tags);
  if (form.category.trim() !== before.category) input.category = category;
  return input;
}

/** The dialog: `collection` to edit, or none to make one. onSubmit(form) may throw UserErrors. */
export function CollectionDialog({ open, collection, onClose, onSubmit, mayChangeLevel = true }) {
  const [form, setForm] = useState(formOf(collection));
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (open) {
      setForm(formOf(collection));
      setError(null);
    }
  }, [open, collection?.id]);
  const set = (key) => (event) => setForm({ ...form, [key]: event.currentTarget.value });
  async function submit(event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await onSubmit(form);
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  }
  const editing = Boolean(collection);
  return html`<${Dialog} open=${open} onClose=${onClose} title=${editing ? `Edit “${collection.name}”` : 'New collection'}>
    <form class="collection-form" onSubmit=${submit} novalidate>
      <${Field} label="Name" name="name" error=${error} hint="Up to 200 characters.">${(id) => html`
        <input id=${id} name="name" required maxlength="200" value=${form.name} onInput=${set('name')} />`}</${Field}>
      <${Field} label="Description" name="description" error=${error}>${(id) => html`
        <textarea id=${id} name="description" value=${form.description} onInput=${set('description')}></textarea>`}</${Field}>
      <div class="form-row">
        <${Field} label="Type" name="type" error=${error}>${(id) => html`
          <select id=${id} name="type" value=${form.type} onChange=${set('type')}>
            ${COLLECTION_TYPES.map(([key, label]) => html`<option key=${key} value=${key}>${label}</option>`)}
          </select>`}</${Field}>
        <${Field} label="Visibility" name="shareLevel" error=${error}
            hint=${mayChangeLevel ? null : 'Only its creator and the team’s owners and admins change this.'}>${(id) => html`
          <select id=${id} name="shareLevel" value=${form.shareLevel} disabled=${!mayChangeLevel} onChange=${set('shareLevel')}>
            ${VISIBILITY.map(([key, label]) => html`<option key=${key} value=${key}>${label}</option>`)}
          </select>`}</${Field}>
      </div>
      <${Field} label="Tags" name="tags" error=${error} hint="Separate tags with commas; at most 30.">${(id) => html`
        <input id=${id} name="tags" value=${form.tags} onInput=${set('tags')} />`}</${Field}>
      <${Field} label="Category" name="category" error=${error}>${(id) => html`
        <input id=${id} name="category" maxlength="100" value=${form.category} onInput=${set('category')} />`}</${Field}>
      <${ErrorBox} error=${error} title=${editing ? 'Could not save the collection' : 'Could not make the collection'} />
      <div class="actions">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button type="submit" class="primary" disabled=${busy}>${busy ? 'Saving…' : editing ? 'Save changes' : 'Create collection'}</button>
      </div>
    </form>
  </${Dialog}>`;
}
