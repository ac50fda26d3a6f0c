// Projects of the team in use (a first version: the list only).
import { html } from '../lib.js';
import { useQuery } from '../api.js';
import { team } from '../viewer.js';
import { ErrorBox, Loading, Empty } from '../ui.js';

const PROJECTS = `query Projects($teamId: ID) {
  projects(teamId: $teamId, first: 50) { edges { node { id title status } } }
}`;

export default function ProjectsPage() {
  const teamId = team.value?.id;
  const list = useQuery(PROJECTS, { teamId }, [teamId]);
  const edges = list.data?.projects.edges ?? [];
  return html`<section class="page">
    <h1>Projects</h1>
    ${list.error && html`<${ErrorBox} error=${list.error} onRetry=${list.reload} />`}
    ${!list.data && !list.error && html`<${Loading} />`}
    ${list.data && edges.length === 0 && html`<${Empty}>No projects yet.</${Empty}>`}
    <ul>${edges.map(({ node }) => html`<li key=${node.id}><a href=${`/projects/${node.id}`}>${node.title}</a> ${node.status}</li>`)}</ul>
  </section>`;
}
