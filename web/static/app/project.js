// The frame of a project's pages (planner, scenes, shots, storyboard): its title, the
// workflow stepper, its progress and the tabs between its pages, kept live by the
// project's feed (`projectEvents`). Pages get the project's header data and
// `events`, a signal of the latest feed event, to refresh their own data from.
import { html, signal, useEffect, useRef, useMemo } from './lib.js';
import { useQuery } from './api.js';
import { useFeed } from './live.js';
import { location$, navigate } from './router.js';
import { ErrorBox, Loading, Progress, Stepper, toast } from './ui.js';

export const PROJECT_HEADER = `query ProjectHeader($id: ID!) {
  project(id: $id) {
    id title status updatedAt team { id name viewerRole }
    progress { totalScenes totalShots shotsWithSelections shotsWithAnimations
      selectionProgress animationProgress isSelectionComplete isAnimationComplete }
  }
}`;

export const PROJECT_EVENTS = `subscription ProjectEvents($projectId: ID!, $after: String) {
  projectEvents(projectId: $projectId, after: $after) { cursor sequence kind nodeId changes at }
}`;

const TABS = [
  ['', 'Plan'],
  ['/scenes', 'Scenes'],
  ['/shots', 'Shots'],
  ['/storyboard', 'Storyboard'],
];

/**
 * <${ProjectShell} projectId=${id}>${(project, events) => ...}</${ProjectShell}>:
 * draws the header and calls its child with the project header data and a signal
 * holding the latest projectEvents event ({kind, nodeId, changes...}).
 */
export function ProjectShell({ projectId, children }) {
  const header = useQuery(PROJECT_HEADER, { id: projectId }, [projectId]);
  const events = useMemo(() => signal(null), [projectId]);
  const pending = useRef(null);
  useFeed(PROJECT_EVENTS, { projectId }, {
    onEvent: (event) => {
      events.value = event;
      if (event.kind === 'PROJECT_DELETED') {
        toast('This project was deleted.', 'error');
        navigate('/projects', { replace: true });
        return;
      }
      if (event.kind === 'SNAPSHOT') return;
      // Many events come in bursts (six images at once): read the header once after.
      clearTimeout(pending.current);
      pending.current = setTimeout(() => header.reload(), 250);
    },
    onError: () => header.reload(),
  }, [projectId]);
  useEffect(() => () => clearTimeout(pending.current), []);
  if (header.error && !header.data) return html`<${ErrorBox} error=${header.error} onRetry=${header.reload} />`;
  if (!header.data) return html`<${Loading} />`;
  const project = header.data.project;
  if (!project) {
    return html`<section class="page"><h1>Project not found</h1>
      <p>It was deleted, or it belongs to a team you are not in. <a href="/projects">Back to projects</a></p></section>`;
  }
  const base = `/projects/${encodeURIComponent(project.id)}`;
  const path = location$.value.path;
  const p = project.progress;
  return html`<div class="project-shell" data-project-id=${project.id}>
    <div class="project-head">
      <p class="crumbs"><a href="/projects">Projects</a> / <span>${project.team.name}</span></p>
      <h1 class="project-title">${project.title}</h1>
      <${Stepper} status=${project.status} />
      <div class="project-progress">
        <${Progress} value=${p.selectionProgress / 100} label=${`Masters chosen: ${p.shotsWithSelections} of ${p.totalShots} shots`} />
        <${Progress} value=${p.animationProgress / 100} label=${`Animated: ${p.shotsWithAnimations} of ${p.totalShots} shots`} />
      </div>
      <nav class="tabs" aria-label="Project">
        ${TABS.map(([suffix, label]) => {
          const href = base + suffix;
          const active = suffix === '' ? path === base : path.startsWith(href);
          return html`<a key=${label} href=${href} class="tab" aria-current=${active ? 'page' : undefined}>${label}</a>`;
        })}
      </nav>
    </div>
    ${children(project, events, header.reload)}
  </div>`;
}
