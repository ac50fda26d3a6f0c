// The frame around every page: a skip link, the header (sections, team switcher,
// log out), the connection banner, the page in <main>, and toasts.
import { html } from './lib.js';
import { chooseTeam } from './api.js';
import { navigate, location$ } from './router.js';
import { viewer, team, logOut } from './viewer.js';
import { ConnectionBanner, Toasts } from './ui.js';

const SECTIONS = [
  ['/projects', 'Projects'],
  ['/library', 'Library'],
  ['/collections', 'Collections'],
  ['/shared', 'Shared with me'],
  ['/constellation', 'Constellation'],
  ['/team', 'Team'],
];

function TeamSwitcher() {
  const me = viewer.value;
  if (!me || me.teams.length === 0) return null;
  return html`<label class="team-switcher">
    <span>Team</span>
    <select value=${team.value?.id} onChange=${(e) => chooseTeam(e.currentTarget.value)}>
      ${me.teams.map((t) => html`<option key=${t.id} value=${t.id}>${t.name}${t.isPersonal ? ' (personal)' : ''}</option>`)}
    </select>
  </label>`;
}

export function Layout({ bare = false, children }) {
  const path = location$.value.path;
  return html`
    <a class="skip-link" href="#main">Skip to content</a>
    <header class="app-header">
      <a class="brand" href="/projects">Storyboard Studio</a>
      ${!bare && html`<nav aria-label="Sections"><ul>
        ${SECTIONS.map(([href, label]) => html`<li key=${href}>
          <a href=${href} aria-current=${path === href || path.startsWith(`${href}/`) ? 'page' : undefined}>${label}</a>
        </li>`)}
      </ul></nav>`}
      ${!bare && html`<div class="account">
        <${TeamSwitcher} />
        <span class="who">${viewer.value?.name ?? ''}</span>
        <button type="button" onClick=${async () => { await logOut(); navigate('/login'); }}>Log out</button>
      </div>`}
    </header>
    <${ConnectionBanner} />
    <main id="main" tabindex="-1">${children}</main>
    <${Toasts} />`;
}
