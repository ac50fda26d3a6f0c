// The editor's pages: each path pattern, the module under pages/ that draws it
// (loaded when first needed), and whether it needs a signed-in person. The server
// answers the editor's page for every path under these first segments
// (api/editor.py APP_SECTIONS); anything else is "not found".
export const routes = [
  { path: '/', redirect: '/projects' },
  { path: '/login', page: 'auth', title: 'Log in', public: true },
  { path: '/signup', page: 'auth', title: 'Sign up', public: true },
  { path: '/invitations/:token', page: 'invitation', title: 'Invitation', public: true },
  { path: '/team', page: 'team', title: 'Team' },
  { path: '/projects', page: 'projects', title: 'Projects' },
  { path: '/projects/:projectId', page: 'planner', title: 'Prompt planner' },
  { path: '/projects/:projectId/scenes', page: 'scenes', title: 'Scenes' },
  { path: '/projects/:projectId/shots', page: 'iterator', title: 'Shots' },
  { path: '/projects/:projectId/shots/:shotId', page: 'iterator', title: 'Shot' },
  { path: '/projects/:projectId/storyboard', page: 'storyboard', title: 'Storyboard' },
  { path: '/library', page: 'library', title: 'Library' },
  { path: '/library/assets/:assetId', page: 'asset', title: 'Asset' },
  { path: '/collections', page: 'collections', title: 'Collections' },
  { path: '/collections/:collectionId', page: 'collections', title: 'Collection' },
  { path: '/shared', page: 'shared', title: 'Shared with me' },
  { path: '/constellation', page: 'constellation', title: 'Constellation' },
];

/** The pages' modules, by name (a literal each, so they can be preloaded and checked). */
export const pages = {
  auth: () => import('./pages/auth.js'),
  invitation: () => import('./pages/invitation.js'),
  team: () => import('./pages/team.js'),
  projects: () => import('./pages/projects.js'),
  planner: () => import('./pages/planner.js'),
  scenes: () => import('./pages/scenes.js'),
  iterator: () => import('./pages/iterator.js'),
  storyboard: () => import('./pages/storyboard.js'),
  library: () => import('./pages/library.js'),
  asset: () => import('./pages/asset.js'),
  collections: () => import('./pages/collections.js'),
  shared: () => import('./pages/shared.js'),
  constellation: () => import('./pages/constellation.js'),
};
