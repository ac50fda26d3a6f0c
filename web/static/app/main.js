// The editor's entry point: draws the page for the current path inside the frame,
// sends signed-out people to log in, and loads each page's module when first needed.
import {
  html, render, useEffect, useRef, useState,
} from './lib.js';
import { useErrorBoundary } from 'preact/hooks';
import { signedIn, session } from './api.js';
import { current, location$, navigate } from './router.js';
import { pages } from './routes.js';
import { Layout } from './layout.js';
import { viewer, loadViewer, viewerError } from './viewer.js';
import { ErrorBox, Loading } from './ui.js';

const loaded = new Map();

function PageLoader({ name, params, title }) {
  const [module, setModule] = useState(() => loaded.get(name) ?? null);
  const [loadError, setLoadError] = useState(null);
  const [caught, resetCaught] = useErrorBoundary((error) => console.error(error));
  useEffect(() => {
    if (loaded.has(name)) {
      setModule(loaded.get(name));
      return;
    }
    setModule(null);
    pages[name]().then((m) => {
      loaded.set(name, m);
      setModule(m);
    }).catch((error) => setLoadError(error));
  }, [name]);
  useEffect(() => { document.title = `${title} · Storyboard Studio`; }, [title]);
  if (caught) {
    return html`<${ErrorBox} title="This page stopped working" error=${{ message: 'Something went wrong while showing this page.' }}
      onRetry=${() => resetCaught()} />`;
  }
  if (loadError) {
    return html`<${ErrorBox} title="This page could not load" error=${{ message: 'Check your connection, then try again.' }}
      onRetry=${() => location.reload()} />`;
  }
  if (!module) return html`<${Loading} />`;
  const Page = module.default;
  return html`<${Page} ...${params} />`;
}

function NotFound() {
  return html`<section class="page"><h1>Not found</h1>
    <p>There is no page at this address. <a href="/projects">Go to your projects</a>.</p></section>`;
}

function App() {
  const here = current.value;
  const { path, query } = location$.value;
  const needsSignIn = here && !here.route.public && !here.route.redirect && !signedIn.value;
  const firstPath = useRef(path);
  useEffect(() => {
    if (here?.route.redirect) navigate(here.route.redirect, { replace: true });
    else if (needsSignIn) {
      const next = path + (query.toString() ? `?${query}` : '');
      navigate(`/login?next=${encodeURIComponent(next)}`, { replace: true });
    }
  }, [here, needsSignIn]);
  useEffect(() => {
    if (signedIn.value && !viewer.value) loadViewer();
  }, [session.value?.token]);
  useEffect(() => {
    // After moving to another page, focus its content (not on the first load).
    if (path !== firstPath.current) document.getElementById('main')?.focus({ preventScroll: true });
    firstPath.current = null;
  }, [path]);
  if (!here) return html`<${Layout} bare=${!signedIn.value}><${NotFound} /></${Layout}>`;
  if (here.route.redirect || needsSignIn) return html`<${Layout} bare><${Loading} /></${Layout}>`;
  if (!here.route.public && !viewer.value) {
    return html`<${Layout} bare>${viewerError.value
      ? html`<${ErrorBox} error=${viewerError.value} onRetry=${loadViewer} />`
      : html`<${Loading} label="Signing you in…" />`}</${Layout}>`;
  }
  return html`<${Layout} bare=${here.route.public}>
    <${PageLoader} key=${path} name=${here.route.page} params=${here.params} title=${here.route.title} />
  </${Layout}>`;
}

const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
