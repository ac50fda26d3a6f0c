// The sharing dialog: who sees the asset in general (`setShareLevel`), sharing it with
// one person (`shareAsset`: by email of a teammate or by user ID, a permission, a
// message, an expiry), and its current shares, each re-levelled or revoked. What the
// API refuses is shown as it says it, at the field it concerns.
import { html, useState } from '../lib.js';
import { mutate, UserErrors } from '../api.js';
import { Dialog, ErrorBox, Field, toast } from '../ui.js';
import { SHARE_ASSET, REVOKE_SHARE, SET_SHARE_LEVEL } from './queries.js';
import { LEVELS, when, words } from './details.js';

const PERMISSIONS = [
  ['VIEW', 'View'],
  ['EDIT', 'Edit (also copy and remix)'],
  ['ADMIN', 'Admin (also share and delete)'],
];
const ON_FORM = { email: 'recipient', userId: 'recipient', permission: 'permission', message: 'message', expiresAt: 'expiresAt' };

/** The refusal with its fields renamed to the form's inputs (email and userId are one box). */
function onForm(error) {
  if (!(error instanceof UserErrors)) return error;
  return new UserErrors(error.errors.map((e) => {
    const last = e.field?.[e.field.length - 1];
    return ON_FORM[last] ? { ...e, field: [ON_FORM[last]] } : { ...e, field: null };
  }));
}

function generalOnly(error) {
  if (!(error instanceof UserErrors)) return error;
  const rest = error.errors.filter((e) => !e.field);
  return rest.length ? new UserErrors(rest) : null;
}

/** A `datetime-local` value (the person's time zone) as an ISO instant, or null. */
function instant(local) {
  if (!local) return null;
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? 'invalid' : date.toISOString();
}

function ShareRow({ share, assetId, onChanged }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const who = share.user ? `${share.user.name} (${share.user.email})` : `someone outside your teams (user ID ${share.userId})`;
  const run = async (work, done) => {
    setBusy(true);
    setError(null);
    try {
      await work();
      toast(done, 'success');
      onChanged();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  const relevel = (event) => {
    const permission = event.currentTarget.value;
    run(() => mutate(SHARE_ASSET, { input: {
      assetId, userId: share.userId, permission, message: share.message, expiresAt: share.expiresAt,
    } }), `${share.user?.name ?? 'They'} may now ${words(permission)} it.`);
  };
  const revoke = () => run(() => mutate(REVOKE_SHARE, { input: { id: share.id } }),
    `Share with ${share.user?.name ?? `user ${share.userId}`} revoked.`);
  return html`<li class=${`share-row${share.active ? '' : ' share-expired'}`} data-share-id=${share.id}>
    <div class="share-who"><strong>${who}</strong>
      <span class="hint">${share.active
        ? share.expiresAt ? html`until ${when(share.expiresAt)}` : 'until revoked'
        : html`expired ${when(share.expiresAt)}`}</span>
      ${share.message && html`<q class="share-message">${share.message}</q>`}
    </div>
    <label class="share-level">
      <span class="visually-hidden">Permission of ${who}</span>
      <select value=${share.permission} disabled=${busy || !share.active} onChange=${relevel}>
        ${PERMISSIONS.map(([value, label]) => html`<option key=${value} value=${value}>${label}</option>`)}
      </select>
    </label>
    <button type="button" disabled=${busy} onClick=${revoke} aria-label=${`Revoke the share with ${who}`}>Revoke</button>
    ${error && html`<div class="share-error"><${ErrorBox} error=${error} title="Not changed" /></div>`}
  </li>`;
}

function GeneralAccess({ asset, onChanged }) {
  const [level, setLevel] = useState(asset.shareLevel);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const save = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await mutate(SET_SHARE_LEVEL, { input: { assetId: asset.id, shareLevel: level } });
      toast('Visibility saved.', 'success');
      onChanged();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="general-access" onSubmit=${save} aria-label="General access">
    <${Field} label="Who sees it besides those it is shared with" name="shareLevel">${(id) => html`
      <select id=${id} value=${level} onChange=${(e) => setLevel(e.currentTarget.value)}>
        ${LEVELS.map(([value, label]) => html`<option key=${value} value=${value}>${label}</option>`)}
      </select>`}</${Field}>
    <${ErrorBox} error=${error} title="Visibility not changed" />
    <button type="submit" disabled=${busy || level === asset.shareLevel}>Save visibility</button>
  </form>`;
}

/** The dialog; onChanged() after anything was saved (the page reads the asset again). */
export function ShareDialog({ asset, open, onClose, onChanged }) {
  const empty = { recipient: '', permission: 'VIEW', message: '', expiresAt: '' };
  const [form, setForm] = useState(empty);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (key) => (event) => { const { value } = event.currentTarget; setForm((f) => ({ ...f, [key]: value })); };
  const submit = async (event) => {
    event.preventDefault();
    setError(null);
    const recipient = form.recipient.trim();
    const expiresAt = instant(form.expiresAt);
    const problems = [];
    if (!recipient) problems.push({ code: 'BLANK', field: ['recipient'], message: 'Enter the email of a teammate, or a user ID.' });
    if (expiresAt === 'invalid') problems.push({ code: 'INVALID', field: ['expiresAt'], message: 'Enter a date and time, or leave it empty for no expiry.' });
    if (problems.length) {
      setError(new UserErrors(problems));
      return;
    }
    const input = {
      assetId: asset.id,
      permission: form.permission,
      message: form.message.trim() || null,
      expiresAt,
      ...(recipient.includes('@') ? { email: recipient } : { userId: recipient }),
    };
    setBusy(true);
    try {
      const { share } = await mutate(SHARE_ASSET, { input });
      toast(`Shared with ${share.user?.name ?? `user ${recipient}`}.`, 'success');
      setForm(empty);
      onChanged();
    } catch (caught) {
      setError(onForm(caught));
    } finally {
      setBusy(false);
    }
  };
  const admin = asset.viewerPermission === 'ADMIN';
  const shares = asset.shares ?? [];
  return html`<${Dialog} open=${open} onClose=${onClose} title=${`Share “${asset.name}”`}>
    ${!admin && html`<p class="note" role="note">You hold ${words(asset.viewerPermission)} permission on this asset.
      Sharing it and changing who sees it need ADMIN: its team's owners and admins, its creator
      (of a copy, remix or new version only if an owner or admin), or someone it is shared with as admin.</p>`}
    <${GeneralAccess} asset=${asset} onChanged=${onChanged} />
    <h3>Share with someone</h3>
    <form class="share-form" onSubmit=${submit} aria-label="Share with someone" novalidate>
      <${ErrorBox} error=${generalOnly(error)} title="Not shared" />
      <${Field} label="Email or user ID" name="recipient" error=${error}
          hint="By email: someone in one of your teams. Anyone else: their user ID.">${(id) => html`
        <input id=${id} value=${form.recipient} onInput=${set('recipient')} autocomplete="off" />`}</${Field}>
      <div class="field-row">
        <${Field} label="Permission" name="permission" error=${error}>${(id) => html`
          <select id=${id} value=${form.permission} onChange=${set('permission')}>
            ${PERMISSIONS.map(([value, label]) => html`<option key=${value} value=${value}>${label}</option>`)}
          </select>`}</${Field}>
        <${Field} label="Expires" name="expiresAt" error=${error} hint="Empty: until revoked; at most a year.">${(id) => html`
          <input id=${id} type="datetime-local" value=${form.expiresAt} onInput=${set('expiresAt')} />`}</${Field}>
      </div>
      <${Field} label="Message" name="message" error=${error}>${(id) => html`
        <textarea id=${id} value=${form.message} onInput=${set('message')} maxlength="2000" rows="2"></textarea>`}</${Field}>
      <button type="submit" class="primary" disabled=${busy}>${busy ? 'Sharing…' : 'Share'}</button>
    </form>
    <h3>Shared with</h3>
    ${shares.length === 0
      ? html`<p class="hint">${admin ? 'No one yet.' : 'Only its admins see the list of shares.'}</p>`
      : html`<ul class="share-list" aria-label="Current shares">
          ${shares.map((share) => html`<${ShareRow} key=${share.id} share=${share} assetId=${asset.id} onChanged=${onChanged} />`)}
        </ul>`}
    <div class="actions"><button type="button" onClick=${onClose}>Done</button></div>
  </${Dialog}>`;
}
