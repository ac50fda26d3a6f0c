// The scene iterator (/projects/:projectId/shots[/:shotId]): a sidebar of the
// project's scenes and their shots (each with its master image, if chosen), and the
// chosen shot (the first one without a shotId) with its iterations, live.
import { html, useEffect, useRef } from '../lib.js';
import { useQuery } from '../api.js';
import { ProjectShell } from '../project.js';
import { ErrorBox, Loading, Empty } from '../ui.js';
import { SHOTS } from '../iterator/queries.js';
import { ShotIterator } from '../iterator/shot.js';
import { previewOf } from '../iterator/tiles.js';

const SIDEBAR_KINDS = /^(SCENE_|SHOT_CREATED|SHOT_UPDATED|SHOT_DELETED|STORYBOARD_SELECTION_)/;

function ShotLink({ projectId, shot, current }) {
  const master = shot.selectedImage;
  const label = `Shot ${shot.shotNumber}${shot.description ? `: ${shot.description}` : ''}`;
  return html`<li class=${`shot-link${current ? ' current' : ''}`} data-shot-id=${shot.id} data-has-master=${master ? 'true' : 'false'}>
    <a href=${`/projects/${encodeURIComponent(projectId)}/shots/${encodeURIComponent(shot.id)}`}
        aria-current=${current ? 'page' : undefined}>
      ${master && previewOf(master)
        ? html`<img class="shot-link-thumb" src=${previewOf(master)} alt="" loading="lazy" />`
        : html`<span class="shot-link-thumb thumb-empty" aria-hidden="true"></span>`}
      <span class="shot-link-text">${label}
        <small class=${master ? 'master-mark' : 'hint'}>${master ? '★ Master chosen' : 'No master yet'}</small>
      </span>
    </a>
  </li>`;
}

function Sidebar({ projectId, scenes, shotId }) {
  return html`<nav class="iterator-sidebar" aria-label="Scenes and shots">
    <h2 class="sidebar-title">Scenes</h2>
    ${scenes.length === 0 && html`<p class="hint">No scenes yet.</p>`}
    <ol class="scene-list">
      ${scenes.map((scene) => html`<li key=${scene.id} class="scene-entry">
        <h3 class="scene-title">Scene ${scene.sceneNumber}: ${scene.title}</h3>
        ${scene.shots.length === 0
          ? html`<p class="hint">No shots.</p>`
          : html`<ol class="shot-list">${scene.shots.map((shot) => html`<${ShotLink} key=${shot.id}
              projectId=${projectId} shot=${shot} current=${shot.id === shotId} />`)}</ol>`}
      </li>`)}
    </ol>
  </nav>`;
}

function Iterator({ project, events, shotId }) {
  const shots = useQuery(SHOTS, { id: project.id }, [project.id]);
  const pending = useRef(null);
  useEffect(() => {
    const event = events.value;
    if (!event || !SIDEBAR_KINDS.test(event.kind)) return;
    clearTimeout(pending.current);
    pending.current = setTimeout(() => shots.reload(), 200);
  }, [events.value]);
  useEffect(() => () => clearTimeout(pending.current), []);
  const scenes = shots.data?.project?.scenes ?? [];
  const all = scenes.flatMap((scene) => scene.shots);
  // Without a shot in the address, the first one.
  const chosen = shotId ?? all[0]?.id ?? null;
  if (shots.error && !shots.data) return html`<${ErrorBox} error=${shots.error} onRetry=${shots.reload} />`;
  if (!shots.data) return html`<${Loading} />`;
  const scenesLink = `/projects/${encodeURIComponent(project.id)}/scenes`;
  if (all.length === 0) {
    return html`<${Empty}>This project has no shots yet. <a href=${scenesLink}>Set up its scenes and shots</a> first.</${Empty}>`;
  }
  const known = all.some((s) => s.id === chosen);
  return html`<div class="iterator-layout">
    <${Sidebar} projectId=${project.id} scenes=${scenes} shotId=${chosen} />
    <div class="iterator-main">
      ${known
        ? html`<${ShotIterator} key=${chosen} shotId=${chosen} events=${events} onMasterChanged=${shots.reload} />`
        : html`<${Empty}>This shot is not in this project any more. Pick one from the list.</${Empty}>`}
    </div>
  </div>`;
}

export default function IteratorPage({ projectId, shotId }) {
  return html`<${ProjectShell} projectId=${projectId}>${(project, events) => html`
    <${Iterator} project=${project} events=${events} shotId=${shotId ?? null} />`}</${ProjectShell}>`;
}
