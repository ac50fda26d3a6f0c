// Sign up and log in (one page, two forms by path). On success the session starts and
// the person goes where they were headed (`?next=`), else to their projects.
import { html, useState, useEffect } from '../lib.js';
import { mutate, startSession, signedIn } from '../api.js';
import { location$, navigate } from '../router.js';
import { loadViewer } from '../viewer.js';
import { ErrorBox, Field } from '../ui.js';

const USER = 'user { id name email }';
const SIGN_UP = `mutation SignUp($input: SignUpInput!) {
  signUp(input: $input) { token ${USER} userErrors { code field message } }
}`;
const LOG_IN = `mutation LogIn($input: LogInInput!) {
  logIn(input: $input) { token ${USER} userErrors { code field message } }
}`;

function destination() {
  const next = location$.value.query.get('next');
  if (!next || !next.startsWith('/')) return '/projects';
  // Only a path of ours, judged as the browser reads it ("/.//evil" is "//evil"): never
  // another site (an open redirect), and never a path that reads as one.
  let url;
  try {
    url = new URL(next, location.origin);
  } catch {
    return '/projects';
  }
  if (url.origin !== location.origin || url.pathname.startsWith('//')) return '/projects';
  return url.pathname + url.search;
}

export default function AuthPage() {
  const signingUp = location$.value.path === '/signup';
  const [form, setForm] = useState({ name: '', email: '', password: '' });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (signedIn.value) navigate(destination(), { replace: true });
  }, []);
  const set = (key) => (event) => setForm({ ...form, [key]: event.currentTarget.value });
  async function submit(event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const input = signingUp ? form : { email: form.email, password: form.password };
      const payload = await mutate(signingUp ? SIGN_UP : LOG_IN, { input });
      startSession(payload.token, payload.user);
      await loadViewer();
      navigate(destination(), { replace: true });
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  }
  const other = signingUp
    ? html`<p>Already have an account? <a href=${`/login${location$.value.query.toString() ? `?${location$.value.query}` : ''}`}>Log in</a></p>`
    : html`<p>New here? <a href=${`/signup${location$.value.query.toString() ? `?${location$.value.query}` : ''}`}>Sign up</a></p>`;
  return html`<section class="page auth-page">
    <h1>${signingUp ? 'Create your account' : 'Log in'}</h1>
    <form onSubmit=${submit} novalidate>
      ${signingUp && html`<${Field} label="Name" name="name" error=${error}>${(id, about) => html`
        <input id=${id} aria-describedby=${about} name="name" autocomplete="name" required value=${form.name} onInput=${set('name')} />`}</${Field}>`}
      <${Field} label="Email" name="email" error=${error}>${(id, about) => html`
        <input id=${id} aria-describedby=${about} name="email" type="email" autocomplete="email" required value=${form.email} onInput=${set('email')} />`}</${Field}>
      <${Field} label="Password" name="password" error=${error}
          hint=${signingUp ? 'At least 8 characters; a passphrase is best.' : null}>${(id, about) => html`
        <input id=${id} aria-describedby=${about} name="password" type="password" required
          autocomplete=${signingUp ? 'new-password' : 'current-password'} value=${form.password} onInput=${set('password')} />`}</${Field}>
      <${ErrorBox} error=${error} title=${signingUp ? 'Could not sign you up' : 'Could not log you in'} />
      <button type="submit" class="primary" disabled=${busy}>${busy ? 'Working…' : signingUp ? 'Sign up' : 'Log in'}</button>
    </form>
    ${other}
  </section>`;
}
