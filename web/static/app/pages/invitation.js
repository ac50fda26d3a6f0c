// An invitation link (/invitations/<code>): a signed-in person accepts it and works in
// the team it opens; someone signed out is sent to sign up (or log in) and comes back.
import { html, useState, useEffect, useRef } from '../lib.js';
import { mutate, chooseTeam, signedIn, UserErrors } from '../api.js';
import { location$, navigate } from '../router.js';
import { viewer, loadViewer } from '../viewer.js';
import { ErrorBox, toast } from '../ui.js';

const ACCEPT = `mutation Accept($input: AcceptInvitationInput!) {
  acceptInvitation(input: $input) { team { id name } userErrors { code field message } }
}`;

export default function InvitationPage({ token }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const heading = useRef(null);
  useEffect(() => {
    if (signedIn.value && !viewer.value) loadViewer();
  }, []);
  const here = location$.value.path;
  const next = encodeURIComponent(here);
  async function accept() {
    setBusy(true);
    setError(null);
    try {
      const payload = await mutate(ACCEPT, { input: { code: token } });
      chooseTeam(payload.team.id);
      await loadViewer();
      toast(`You joined ${payload.team.name}.`, 'success');
      navigate('/team', { replace: true });
    } catch (caught) {
      setError(caught);
      heading.current?.focus();
    } finally {
      setBusy(false);
    }
  }
  const already = error instanceof UserErrors && error.code === 'ALREADY_MEMBER';
  return html`<section class="page auth-page invitation-page" aria-labelledby="invitation-heading">
    <h1 id="invitation-heading" ref=${heading} tabindex="-1">You are invited to a team</h1>
    ${signedIn.value
      ? html`
        <p>Accepting this invitation makes you a member of the team that sent it, in the role it was made for.
          You then see and work on its projects and its library.</p>
        ${viewer.value && html`<p class="hint">Signed in as ${viewer.value.name} (${viewer.value.email}).</p>`}
        <${ErrorBox} error=${error} title="Could not accept the invitation" />
        ${already && html`<p><a href="/team">See your teams</a></p>`}
        <div class="actions">
          <a class="button" href="/projects">Not now</a>
          <button type="button" class="primary" disabled=${busy} onClick=${accept}>${busy ? 'Joining…' : 'Accept invitation'}</button>
        </div>`
      : html`
        <p>To join the team, create an account (or log in); you come back here to accept.</p>
        <div class="actions">
          <a class="button" href=${`/login?next=${next}`}>Log in</a>
          <a class="button primary" href=${`/signup?next=${next}`}>Sign up</a>
        </div>`}
  </section>`;
}
