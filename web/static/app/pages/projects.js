// The projects of the team in use: a paged list (newest first) with each project's
// workflow stage, progress and last change; create one (then open it), delete one
// after a confirmation that counts what goes with it. Kept live by the team's feed
// (`teamEvents`): another member's create, change or delete shows without a reload.
import { html, useState, useEffect, useRef, useCallback } from '../lib.js';
import { gql, mutate, describeError } from '../api.js';
import { useTeamFeed } from '../team-feed.js';
import { navigate } from '../router.js';
import { team, viewer } from '../viewer.js';
import {
  ErrorBox, Loading, Empty, Dialog, ConfirmDialog, Field, Progress, WORKFLOW, ago, toast,
} from '../ui.js';

/** How many projects a page of the list asks for (the API's default). */
export const PAGE = 20;
const MAX_FIRST = 100;

const PROJECT_FIELDS = `id title status updatedAt owner { id name } team { id }
  progress { totalScenes totalShots shotsWithSelections shotsWithAnimations selectionProgress animationProgress }`;

const PROJECTS = `query Projects($teamId: ID!, $first: Int!, $after: String) {
  projects(teamId: $teamId, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { ${PROJECT_FIELDS} } }
  }
}`;

const PROJECT = `query ProjectCard($id: ID!) { project(id: $id) { ${PROJECT_FIELDS} } }`;

const CREATE = `mutation CreateProject($input: CreateProjectInput!) {
  createProject(input: $input) { project { id title } userErrors { code field message } }
}`;

const DELETE = `mutation DeleteProject($input: DeleteInput!) {
  deleteProject(input: $input) { deletedId userErrors { code field message } }
}`;

/** What a project's deletion takes with it, and the library assets that stay. */
const CASCADE = `query ProjectCascade($id: ID!) {
  project(id: $id) {
    id title
    scenes { id shots { id images { id } storyboardSelection { id animationStatus } } }
  }
  library(filter: { projectIds: [$id] }, first: 0) { totalCount }
}`;

const STATUS_LABELS = Object.fromEntries(WORKFLOW);
const WRITERS = ['OWNER', 'ADMIN', 'EDITOR'];
const MANAGERS = ['OWNER', 'ADMIN'];

/** "1 scene", "3 scenes". */
export function count(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

/** "a, b and c". */
function listing(parts) {
  return parts.length < 2 ? parts.join('') : `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}`;
}

// -- the list's state ---------------------------------------------------------------------

const EMPTY = { items: [], total: 0, endCursor: null, hasNext: false, loaded: false };

/**
 * The team's projects as loaded so far, with paging and the changes the feed reports.
 * Returns {list, error, loading, loadingMore, loadMore, refresh, upsert, remove}.
 */
function useProjectList(teamId) {
  const [list, setList] = useState(EMPTY);
  const [error, setError] = useState(null);
  const [loading, setLoading] = useState(true);
  const [loadingMore, setLoadingMore] = useState(false);
  const generation = useRef(0);
  const gone = useRef(new Set());
  const shown = useRef(list);
  shown.current = list;

  /** Reads the first `size` projects again (all those shown), replacing the list. */
  const refresh = useCallback(async (size = PAGE) => {
    if (!teamId) return;
    const mine = ++generation.current;
    setLoading(true);
    try {
      const first = Math.min(Math.max(size, PAGE), MAX_FIRST);
      const data = await gql(PROJECTS, { teamId, first });
      if (mine !== generation.current) return;
      const page = data.projects;
      setList({
        items: page.edges.map((e) => e.node),
        total: page.totalCount,
        endCursor: page.pageInfo.endCursor,
        hasNext: page.pageInfo.hasNextPage,
        loaded: true,
      });
      setError(null);
    } catch (caught) {
      if (mine === generation.current) setError(caught);
    } finally {
      if (mine === generation.current) setLoading(false);
    }
  }, [teamId]);

  useEffect(() => {
    gone.current = new Set();
    setList(EMPTY);
    refresh();
    return () => { generation.current++; };
  }, [refresh]);

  const loadMore = useCallback(async () => {
    const now = shown.current;
    if (!now.hasNext) return;
    const mine = generation.current;
    setLoadingMore(true);
    try {
      const data = await gql(PROJECTS, { teamId, first: PAGE, after: now.endCursor });
      if (mine !== generation.current) return;
      const page = data.projects;
      setList((s) => {
        const have = new Set(s.items.map((p) => p.id));
        const more = page.edges.map((e) => e.node).filter((p) => !have.has(p.id) && !gone.current.has(p.id));
        return {
          ...s,
          items: [...s.items, ...more],
          total: page.totalCount,
          endCursor: page.pageInfo.endCursor,
          hasNext: page.pageInfo.hasNextPage,
        };
      });
      setError(null);
    } catch (caught) {
      setError(caught);
    } finally {
      setLoadingMore(false);
    }
  }, [teamId]);

  /** A project created or changed: replace it, or put a new one first. */
  const upsert = useCallback((project) => {
    if (gone.current.has(project.id)) return;
    setList((s) => {
      const at = s.items.findIndex((p) => p.id === project.id);
      if (at >= 0) {
        const items = s.items.slice();
        items[at] = project;
        return { ...s, items };
      }
      return { ...s, items: [project, ...s.items], total: s.total + 1 };
    });
  }, []);

  /** A project deleted (here or by someone else): out of the list, once. */
  const remove = useCallback((id) => {
    if (gone.current.has(id)) return;
    gone.current.add(id);
    setList((s) => ({
      ...s,
      items: s.items.filter((p) => p.id !== id),
      total: Math.max(0, s.total - 1),
    }));
  }, []);

  return { list, error, loading, loadingMore, loadMore, refresh, upsert, remove };
}

// -- one project ----------------------------------------------------------------------------

function ProjectCard({ project, mayDelete, onDelete }) {
  const p = project.progress;
  const href = `/projects/${encodeURIComponent(project.id)}`;
  return html`<li class="project-card" data-project-id=${project.id}>
    <h2 class="project-card-title"><a href=${href}>${project.title}</a></h2>
    <p class="project-meta">
      <span class="status-badge" data-status=${project.status}>${STATUS_LABELS[project.status] ?? project.status}</span>
      <span class="updated">Updated <time datetime=${project.updatedAt} title=${new Date(project.updatedAt).toLocaleString()}>${ago(project.updatedAt)}</time></span>
    </p>
    <div class="project-card-progress">
      <${Progress} value=${p.selectionProgress / 100}
        label=${`Masters chosen: ${p.shotsWithSelections} of ${count(p.totalShots, 'shot')}`} />
      <${Progress} value=${p.animationProgress / 100}
        label=${`Animated: ${p.shotsWithAnimations} of ${count(p.totalShots, 'shot')}`} />
    </div>
    <p class="project-counts">${count(p.totalScenes, 'scene')} · ${count(p.totalShots, 'shot')}</p>
    ${mayDelete && html`<div class="project-card-actions">
      <button type="button" class="danger-outline" aria-label=${`Delete ${project.title}`}
        onClick=${() => onDelete(project)}>Delete</button>
    </div>`}
  </li>`;
}

// -- creating -------------------------------------------------------------------------------

function NewProjectDialog({ open, onClose, teamId, teamName }) {
  const [form, setForm] = useState({ title: '', prompt: '' });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (open) {
      setForm({ title: '', prompt: '' });
      setError(null);
    }
  }, [open]);
  async function submit(event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const input = { teamId, title: form.title, prompt: form.prompt.trim() ? form.prompt : null };
      const payload = await mutate(CREATE, { input });
      onClose();
      navigate(`/projects/${encodeURIComponent(payload.project.id)}`);
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  }
  const set = (key) => (event) => setForm({ ...form, [key]: event.currentTarget.value });
  return html`<${Dialog} open=${open} onClose=${onClose} title="New project">
    <form onSubmit=${submit} novalidate>
      <p class="hint">It belongs to ${teamName}; everyone in the team can see it.</p>
      <${Field} label="Title" name="title" error=${error} hint="Up to 200 characters.">${(id, about) => html`
        <input id=${id} aria-describedby=${about} name="title" required maxlength="200" autocomplete="off"
          value=${form.title} onInput=${set('title')} />`}</${Field}>
      <${Field} label="Prompt (optional)" name="prompt" error=${error}
          hint="The brain dump to start from: what the story is, its mood, its look. You can write it later.">${(id, about) => html`
        <textarea id=${id} aria-describedby=${about} name="prompt" value=${form.prompt} onInput=${set('prompt')}></textarea>`}</${Field}>
      <${ErrorBox} error=${error} title="Could not create the project" />
      <div class="actions">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button type="submit" class="primary" disabled=${busy}>${busy ? 'Creating…' : 'Create project'}</button>
      </div>
    </form>
  </${Dialog}>`;
}

// -- deleting -------------------------------------------------------------------------------

/** Counts what goes with the project: {scenes, shots, images, clips, assets}. */
async function countCascade(projectId) {
  const data = await gql(CASCADE, { id: projectId });
  if (!data.project) return null;
  let shots = 0;
  let images = 0;
  let clips = 0;
  for (const scene of data.project.scenes) {
    for (const shot of scene.shots) {
      shots += 1;
      images += shot.images.length;
      if (shot.storyboardSelection?.animationStatus === 'COMPLETE') clips += 1;
    }
  }
  return { scenes: data.project.scenes.length, shots, images, clips, assets: data.library.totalCount };
}

/** The sentences a person reads before deleting. */
export function cascadeText(title, teamName, c) {
  const goes = listing([
    count(c.scenes, 'scene'), count(c.shots, 'shot'), count(c.images, 'image'), count(c.clips, 'clip'),
  ]);
  return {
    goes: `Deleting “${title}” deletes, for everyone in ${teamName}, its ${goes}, with its chosen master images. Generations still running for it are stopped.`,
    stays: c.assets
      ? `The ${count(c.assets, 'library asset')} made from it stay in the library.`
      : 'Library assets made from it would stay in the library; it has none.',
  };
}

function DeleteProjectDialog({ project, teamName, onClose, onDeleted }) {
  const [counts, setCounts] = useState(null);
  const [countError, setCountError] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const read = useCallback(async () => {
    if (!project) return;
    setCountError(null);
    try {
      const found = await countCascade(project.id);
      if (found) setCounts(found);
      else setCountError({ message: 'This project is not there any more.' });
    } catch (caught) {
      setCountError(caught);
    }
  }, [project?.id]);
  useEffect(() => {
    setCounts(null);
    setError(null);
    read();
  }, [read]);
  async function confirm() {
    setBusy(true);
    setError(null);
    try {
      await mutate(DELETE, { input: { id: project.id } });
      onDeleted(project);
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  }
  let consequences = html`<${Loading} label="Counting what goes with it…" />`;
  if (countError) {
    consequences = html`<div class="error-box" role="alert"><p>Could not count what goes with it: ${describeError(countError)}</p>
      <button type="button" onClick=${read}>Count again</button></div>`;
  } else if (counts && project) {
    const text = cascadeText(project.title, teamName, counts);
    consequences = html`<p class="cascade">${text.goes}</p><p class="stays">${text.stays}</p>
      <p><strong>This cannot be undone.</strong></p>`;
  }
  return html`<${ConfirmDialog} open=${Boolean(project)} title=${project ? `Delete “${project.title}”?` : 'Delete'}
    consequences=${consequences} confirmLabel="Delete project" busy=${busy || !counts}
    error=${error} onConfirm=${confirm} onClose=${onClose} />`;
}

// -- the page -------------------------------------------------------------------------------

export default function ProjectsPage() {
  const current = team.value;
  const teamId = current?.id ?? null;
  const me = viewer.value;
  const role = current?.viewerRole;
  const projects = useProjectList(teamId);
  const { list } = projects;
  const [creating, setCreating] = useState(false);
  const [deleting, setDeleting] = useState(null);
  const pending = useRef(new Map());
  const deletingRef = useRef(deleting);
  deletingRef.current = deleting;

  const asked = useRef(new Map());
  const reread = useCallback(async (id) => {
    // Only the latest read of a project counts: answers can come back out of order.
    const mine = (asked.current.get(id) ?? 0) + 1;
    asked.current.set(id, mine);
    try {
      const data = await gql(PROJECT, { id });
      if (asked.current.get(id) !== mine) return;
      if (!data.project) projects.remove(id);
      else if (data.project.team.id === teamId) projects.upsert(data.project);
    } catch {
      // The next event, or a reload, shows it; the list stays as it is.
    }
  }, [teamId]);

  const live = useTeamFeed(teamId, {
    onEvent: (event) => {
      if (event.kind === 'SNAPSHOT') {
        // Read again from where the feed starts: nothing made between the first read
        // and the feed's start is missed (a read still under way is superseded).
        projects.refresh(list.items.length);
        return;
      }
      if (event.kind === 'PROJECT_DELETED') {
        projects.remove(event.nodeId);
        if (deletingRef.current?.id === event.nodeId) {
          toast(`“${deletingRef.current.title}” was deleted by someone else.`, 'info');
          setDeleting(null);
        }
        return;
      }
      if (event.kind === 'PROJECT_CREATED' || event.kind === 'PROJECT_UPDATED') {
        // Bursts of changes to one project are read once.
        const id = event.nodeId;
        clearTimeout(pending.current.get(id));
        pending.current.set(id, setTimeout(() => {
          pending.current.delete(id);
          reread(id);
        }, event.kind === 'PROJECT_CREATED' ? 0 : 200));
      }
    },
  });
  useEffect(() => () => pending.current.forEach((timer) => clearTimeout(timer)), [teamId]);

  if (!current) {
    return html`<section class="page"><h1>Projects</h1>
      <${Empty}>You are in no team. <a href="/team">Create a team</a> to start a project.</${Empty}></section>`;
  }
  const mayCreate = WRITERS.includes(role);
  const mayDelete = (project) => MANAGERS.includes(role) || (mayCreate && project.owner?.id === me?.id);
  function deleted(project) {
    projects.remove(project.id);
    setDeleting(null);
    toast(`Deleted “${project.title}”.`, 'success');
    document.getElementById('main')?.focus({ preventScroll: true });
  }
  return html`<section class="page projects-page" data-live=${live} aria-labelledby="projects-heading">
    <div class="projects-head">
      <h1 id="projects-heading">Projects <span class="team-name">of ${current.name}</span></h1>
      ${mayCreate
        ? html`<button type="button" class="primary" onClick=${() => setCreating(true)}>New project</button>`
        : html`<p class="hint">As a viewer in this team you can open its projects but not create them.</p>`}
    </div>
    ${live === 'off' && html`<p class="live-note" role="status">Live updates are unavailable right now: reload to see others' changes.</p>`}
    ${projects.error && html`<${ErrorBox} error=${projects.error}
      onRetry=${() => (list.loaded ? projects.loadMore() : projects.refresh())} title="Could not load the projects" />`}
    ${!list.loaded && !projects.error && html`<${Loading} label="Loading projects…" />`}
    ${list.loaded && list.items.length === 0 && html`<${Empty}>
      <p>No projects in ${current.name} yet.</p>
      ${mayCreate && html`<button type="button" class="primary" onClick=${() => setCreating(true)}>Create the first project</button>`}
    </${Empty}>`}
    ${list.items.length > 0 && html`
      <p class="list-count" aria-live="polite">Showing ${list.items.length} of ${count(list.total, 'project')}</p>
      <ul class="project-list" aria-label="Projects">
        ${list.items.map((project) => html`<${ProjectCard} key=${project.id} project=${project}
          mayDelete=${mayDelete(project)} onDelete=${setDeleting} />`)}
      </ul>`}
    ${list.hasNext && html`<div class="load-more">
      <button type="button" onClick=${projects.loadMore} disabled=${projects.loadingMore}>
        ${projects.loadingMore ? 'Loading…' : 'Load more'}
      </button></div>`}
    <${NewProjectDialog} open=${creating} onClose=${() => setCreating(false)} teamId=${teamId} teamName=${current.name} />
    <${DeleteProjectDialog} project=${deleting} teamName=${current.name}
      onClose=${() => setDeleting(null)} onDeleted=${deleted} />
  </section>`;
}
