// The team in use: its members and their roles, inviting someone (a link with a
// single-use code), the pending invitations (revoke), removing a member or leaving;
// and the person's teams: switch to one, or create a new one. Kept live by the
// team's feed (`teamEvents`): members joining or leaving and invitations show at once.
import { html, useState, useEffect, useRef, useCallback } from '../lib.js';
import { gql, mutate, useQuery, chooseTeam } from '../api.js';
import { useTeamFeed } from '../team-feed.js';
import { navigate } from '../router.js';
import { team, viewer, loadViewer } from '../viewer.js';
import {
  ErrorBox, Loading, Field, ConfirmDialog, ago, toast,
} from '../ui.js';

const TEAM = `query TeamPage($id: ID!) {
  team(id: $id) {
    id name isPersonal viewerRole createdAt
    members { role user { id name email } }
    invitations { id role createdAt expiresAt invitedBy { id name } }
  }
}`;

const ERRORS = 'userErrors { code field message }';
const INVITE = `mutation Invite($input: InviteTeamMemberInput!) {
  inviteTeamMember(input: $input) { code invitation { id role expiresAt } ${ERRORS} }
}`;
const REVOKE = `mutation Revoke($input: RevokeInvitationInput!) { revokeInvitation(input: $input) { deletedId ${ERRORS} } }`;
const REMOVE = `mutation Remove($input: RemoveTeamMemberInput!) { removeTeamMember(input: $input) { team { id } ${ERRORS} } }`;
const CREATE_TEAM = `mutation CreateTeam($input: CreateTeamInput!) { createTeam(input: $input) { team { id name } ${ERRORS} } }`;

export const ROLES = [
  ['OWNER', 'Owner', 'manages members and everything in the team'],
  ['ADMIN', 'Admin', 'manages members (not owners) and every project'],
  ['EDITOR', 'Editor', 'creates and changes projects'],
  ['VIEWER', 'Viewer', 'sees projects, changes nothing'],
];
const ROLE_LABELS = Object.fromEntries(ROLES.map(([key, label]) => [key, label]));
const MANAGERS = ['OWNER', 'ADMIN'];
const MEMBER_KINDS = ['MEMBER_JOINED', 'MEMBER_LEFT', 'MEMBER_ROLE_CHANGED'];

/** "an editor", "a viewer". */
function withArticle(word) {
  return `${/^[aeiou]/.test(word) ? 'an' : 'a'} ${word}`;
}

function when(iso) {
  return html`<time datetime=${iso} title=${new Date(iso).toLocaleString()}>${ago(iso)}</time>`;
}

// -- inviting -------------------------------------------------------------------------------

function InviteForm({ teamData, onInvited }) {
  const [role, setRole] = useState('EDITOR');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [made, setMade] = useState(null);
  const linkRef = useRef(null);
  const mayOwner = teamData.viewerRole === 'OWNER';
  async function submit(event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const payload = await mutate(INVITE, { input: { teamId: teamData.id, role } });
      setMade({
        link: `${location.origin}/invitations/${encodeURIComponent(payload.code)}`,
        role: payload.invitation.role,
        expiresAt: payload.invitation.expiresAt,
      });
      onInvited();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  }
  useEffect(() => {
    if (made) linkRef.current?.select();
  }, [made]);
  async function copy() {
    try {
      await navigator.clipboard.writeText(made.link);
      toast('Invitation link copied.', 'success');
    } catch {
      linkRef.current?.select();
      toast('Press Ctrl+C (or ⌘C) to copy the selected link.', 'info');
    }
  }
  return html`<section class="panel" aria-labelledby="invite-heading">
    <h2 id="invite-heading">Invite a member</h2>
    <form class="team-form" onSubmit=${submit} novalidate>
      <${Field} label="Role" name="role" error=${error}
          hint=${ROLES.find(([key]) => key === role)?.[2]}>${(id, about) => html`
        <select id=${id} aria-describedby=${about} name="role" value=${role} onChange=${(e) => setRole(e.currentTarget.value)}>
          ${ROLES.filter(([key]) => key !== 'OWNER' || mayOwner).map(([key, label]) => html`<option key=${key} value=${key}>${label}</option>`)}
        </select>`}</${Field}>
      <button type="submit" class="primary" disabled=${busy}>${busy ? 'Working…' : 'Create invitation link'}</button>
    </form>
    <${ErrorBox} error=${error} title="Could not invite" />
    ${made && html`<div class="invitation-made" role="status">
      <p>Send this link to the person you invite, by a channel you trust. Whoever opens it first
        joins ${teamData.name} as ${withArticle(ROLE_LABELS[made.role].toLowerCase())}.
        It is shown only this once and works until ${new Date(made.expiresAt).toLocaleString()}.</p>
      <div class="copy-row">
        <label for="invitation-link">Invitation link</label>
        <input id="invitation-link" ref=${linkRef} readonly value=${made.link} onFocus=${(e) => e.currentTarget.select()} />
        <button type="button" onClick=${copy}>Copy link</button>
      </div>
    </div>`}
  </section>`;
}

function Invitations({ invitations, mayOwner, onChanged }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(null);
  async function revoke(invitation) {
    setBusy(invitation.id);
    setError(null);
    try {
      await mutate(REVOKE, { input: { id: invitation.id } });
      toast(`The ${ROLE_LABELS[invitation.role].toLowerCase()} invitation is revoked; its link no longer works.`, 'success');
      onChanged();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(null);
    }
  }
  return html`<section class="panel" aria-labelledby="pending-heading">
    <h2 id="pending-heading">Pending invitations</h2>
    <${ErrorBox} error=${error} title="Could not revoke" />
    ${invitations.length === 0
      ? html`<p class="hint">None: every invitation was used, revoked or has expired.</p>`
      : html`<ul class="invitation-list" aria-label="Pending invitations">
        ${invitations.map((inv) => {
          const what = `${ROLE_LABELS[inv.role]} invitation`;
          const mayRevoke = inv.role !== 'OWNER' || mayOwner;
          return html`<li key=${inv.id} data-invitation-id=${inv.id}>
            <span><strong>${what}</strong>, made ${when(inv.createdAt)}${inv.invitedBy ? ` by ${inv.invitedBy.name}` : ''}; expires ${when(inv.expiresAt)}</span>
            ${mayRevoke && html`<button type="button" disabled=${busy === inv.id}
              aria-label=${`Revoke the ${what.toLowerCase()} made ${ago(inv.createdAt)}`}
              onClick=${() => revoke(inv)}>${busy === inv.id ? 'Revoking…' : 'Revoke'}</button>`}
          </li>`;
        })}
      </ul>`}
  </section>`;
}

// -- members --------------------------------------------------------------------------------

function Members({ teamData, onChanged }) {
  const me = viewer.value;
  const [removing, setRemoving] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const manager = MANAGERS.includes(teamData.viewerRole);
  const leaving = removing?.user.id === me?.id;
  const mayRemove = (member) => manager && member.user.id !== me?.id
    && (member.role !== 'OWNER' || teamData.viewerRole === 'OWNER');
  async function confirm() {
    setBusy(true);
    setError(null);
    try {
      await mutate(REMOVE, { input: { teamId: teamData.id, userId: removing.user.id } });
      if (leaving) {
        toast(`You left ${teamData.name}.`, 'success');
        setRemoving(null);
        await loadViewer();
        navigate('/projects');
        return;
      }
      toast(`${removing.user.name} is no longer in ${teamData.name}.`, 'success');
      setRemoving(null);
      onChanged();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  }
  const consequences = removing && (leaving
    ? html`<p>You will no longer see ${teamData.name}'s projects and library, and the invitations you made for it stop working.
        The projects you made stay with the team. To come back you need a new invitation.</p>`
    : html`<p>${removing.user.name} (${removing.user.email}) will no longer see ${teamData.name}'s projects and library, at once.
        The projects they made stay with the team, and the invitations they made for it stop working.
        They can come back only with a new invitation.</p>`);
  return html`<section class="panel" aria-labelledby="members-heading">
    <h2 id="members-heading">Members <span class="hint">(${teamData.members.length})</span></h2>
    <table class="members">
      <caption class="visually-hidden">Members of ${teamData.name} and their roles</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">Email</th><th scope="col">Role</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody>
        ${teamData.members.map((member) => html`<tr key=${member.user.id} data-user-id=${member.user.id}>
          <th scope="row">${member.user.name}${member.user.id === me?.id ? ' (you)' : ''}</th>
          <td>${member.user.email}</td>
          <td>${ROLE_LABELS[member.role] ?? member.role}</td>
          <td>${mayRemove(member) && html`<button type="button" class="danger-outline"
              aria-label=${`Remove ${member.user.name}`} onClick=${() => { setError(null); setRemoving(member); }}>Remove</button>`}</td>
        </tr>`)}
      </tbody>
    </table>
    ${!teamData.isPersonal && html`<p><button type="button" class="link"
      onClick=${() => { setError(null); setRemoving(teamData.members.find((m) => m.user.id === me?.id)); }}>Leave ${teamData.name}</button></p>`}
    <${ConfirmDialog} open=${Boolean(removing)}
      title=${leaving ? `Leave ${teamData.name}?` : `Remove ${removing?.user.name ?? ''} from ${teamData.name}?`}
      consequences=${consequences} confirmLabel=${leaving ? 'Leave team' : 'Remove member'}
      busy=${busy} error=${error} onConfirm=${confirm} onClose=${() => setRemoving(null)} />
  </section>`;
}

// -- the person's teams -----------------------------------------------------------------------

function Teams() {
  const me = viewer.value;
  const [name, setName] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function create(event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const payload = await mutate(CREATE_TEAM, { input: { name } });
      chooseTeam(payload.team.id);
      await loadViewer();
      setName('');
      toast(`Created ${payload.team.name}; you are working in it now.`, 'success');
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  }
  return html`<section class="panel" aria-labelledby="teams-heading">
    <h2 id="teams-heading">Your teams</h2>
    <ul class="team-list" aria-label="Your teams">
      ${(me?.teams ?? []).map((t) => html`<li key=${t.id}>
        <span>${t.name}${t.isPersonal ? ' (personal)' : ''} <span class="hint">· ${ROLE_LABELS[t.viewerRole] ?? ''}</span></span>
        ${t.id === team.value?.id
          ? html`<span class="in-use" aria-current="true">In use</span>`
          : html`<button type="button" onClick=${() => chooseTeam(t.id)}>Use this team<span class="visually-hidden">: ${t.name}</span></button>`}
      </li>`)}
    </ul>
    <form class="team-form" onSubmit=${create} novalidate>
      <${Field} label="New team's name" name="name" error=${error}>${(id, about) => html`
        <input id=${id} aria-describedby=${about} name="name" required maxlength="100" autocomplete="off" value=${name}
          onInput=${(e) => setName(e.currentTarget.value)} />`}</${Field}>
      <button type="submit" disabled=${busy}>${busy ? 'Creating…' : 'Create team'}</button>
    </form>
    <${ErrorBox} error=${error} title="Could not create the team" />
  </section>`;
}

// -- the page -------------------------------------------------------------------------------

export default function TeamPage() {
  const teamId = team.value?.id ?? null;
  const query = useQuery(TEAM, { id: teamId }, [teamId]);
  const pending = useRef(null);
  const soon = useCallback((alsoViewer) => {
    clearTimeout(pending.current);
    pending.current = setTimeout(() => {
      query.reload();
      if (alsoViewer) loadViewer();
    }, 150);
  }, [query.reload]);
  const live = useTeamFeed(teamId, {
    onEvent: (event) => {
      if (event.kind === 'SNAPSHOT') {
        soon(false); // from where the feed starts: nothing before it is missed
        return;
      }
      if (MEMBER_KINDS.includes(event.kind)) soon(true);
      else if (event.kind.startsWith('INVITATION_')) soon(false);
    },
  });
  useEffect(() => () => clearTimeout(pending.current), [teamId]);

  if (!teamId) {
    return html`<section class="page team-page"><h1>Team</h1><p>You are in no team yet.</p><${Teams} /></section>`;
  }
  const data = query.data?.team;
  let body;
  if (query.error && !query.data) body = html`<${ErrorBox} error=${query.error} onRetry=${query.reload} />`;
  else if (!query.data) body = html`<${Loading} label="Loading the team…" />`;
  else if (!data) body = html`<p>This team is not there any more, or you left it. Choose another below.</p>`;
  else {
    const manager = MANAGERS.includes(data.viewerRole);
    body = html`
      <p class="team-summary">Your role: <strong>${ROLE_LABELS[data.viewerRole] ?? data.viewerRole}</strong>.
        ${data.isPersonal ? ' This is your personal team: only you are in it. Create a team below to work with others.' : ''}</p>
      <${Members} teamData=${data} onChanged=${query.reload} />
      ${manager && !data.isPersonal && html`<${InviteForm} teamData=${data} onInvited=${query.reload} />`}
      ${manager && !data.isPersonal && html`<${Invitations} invitations=${data.invitations ?? []}
        mayOwner=${data.viewerRole === 'OWNER'} onChanged=${query.reload} />`}
      ${!manager && !data.isPersonal && html`<p class="hint">Only the team's owners and admins can invite members.</p>`}`;
  }
  return html`<section class="page team-page" data-live=${live} aria-labelledby="team-heading">
    <h1 id="team-heading">${data?.name ?? team.value?.name ?? 'Team'}</h1>
    ${live === 'off' && html`<p class="live-note" role="status">Live updates are unavailable right now: reload to see others' changes.</p>`}
    ${body}
    <${Teams} />
  </section>`;
}
