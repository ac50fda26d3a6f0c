// An asset's lineage (`lineage(assetId)`) drawn as a tree: its ancestors down to it,
// then everything made from it, each node a link to its asset, each step labelled
// with how it came from its parent (EVOLVE, ANIMATE, DUPLICATE, REMIX, REGENERATE).
//
// It follows the ARIA tree pattern (https://www.w3.org/WAI/ARIA/apg/patterns/treeview/):
// one node is in the tab order; arrows move between nodes (Up/Down), open and close a
// node or go to its parent or first child (Right/Left), Home/End go to the ends, and
// Enter follows the focused node's link.
import { html, useMemo, useRef, useState } from '../lib.js';

const STEP = {
  EVOLVE: 'Refined (EVOLVE)',
  ANIMATE: 'Animated (ANIMATE)',
  DUPLICATE: 'Copied (DUPLICATE)',
  REMIX: 'Remixed (REMIX)',
  REGENERATE: 'Regenerated (REGENERATE)',
};

/** The nested tree {node, children} of the lineage answer, from its oldest shown ancestor. */
export function buildTree(lineage) {
  const below = new Map();
  for (const node of lineage.descendants) {
    const list = below.get(node.parentId) ?? [];
    list.push(node);
    below.set(node.parentId, list);
  }
  const grow = (node) => ({ node, children: (below.get(node.asset.id) ?? []).map(grow) });
  let top = grow(lineage.tree);
  for (const ancestor of [...lineage.ancestors].reverse()) top = { node: ancestor, children: [top] };
  return top;
}

function visibleOrder(top, collapsed) {
  const order = [];
  const walk = (item, parent) => {
    order.push({ item, parent });
    if (!collapsed.has(item.node.asset.id)) item.children.forEach((child) => walk(child, item));
  };
  walk(top, null);
  return order;
}

function Node({ item, level, index, count, currentId, focusId, collapsed, onFocus, toggle }) {
  const { node, children } = item;
  const id = node.asset.id;
  const open = !collapsed.has(id);
  const current = id === currentId;
  const step = node.evolutionType !== 'ORIGINAL' && level > 1;
  return html`<li role="none" class=${`lineage-node${current ? ' is-current' : ''}`}>
    <a role="treeitem" href=${`/library/assets/${encodeURIComponent(id)}`} data-asset-id=${id}
        aria-level=${level} aria-setsize=${count} aria-posinset=${index + 1}
        aria-expanded=${children.length ? String(open) : undefined}
        aria-current=${current ? 'page' : undefined}
        tabindex=${id === focusId ? '0' : '-1'} onFocus=${() => onFocus(id)}>
      ${step && html`<span class=${`edge edge-${node.evolutionType.toLowerCase()}`}>${STEP[node.evolutionType] ?? node.evolutionType}</span>`}
      <span class="node-name">${node.asset.name}</span>
      <span class="node-meta">v${node.version} · ${node.branchName} · ${node.asset.kind.toLowerCase()} · ${node.asset.status.toLowerCase()}</span>
      ${current && html`<span class="node-here">(this asset)</span>`}
    </a>
    ${children.length > 0 && html`<button type="button" class="node-toggle" tabindex="-1" aria-hidden="true"
        onClick=${() => toggle(id)}>${open ? '−' : '+'}</button>`}
    ${children.length > 0 && open && html`<ul role="group">
      ${children.map((child, i) => html`<${Node} key=${child.node.asset.id} item=${child} level=${level + 1}
          index=${i} count=${children.length} currentId=${currentId} focusId=${focusId}
          collapsed=${collapsed} onFocus=${onFocus} toggle=${toggle} />`)}
    </ul>`}
  </li>`;
}

/** <${LineageTree} lineage=${data.lineage} currentId=${asset.id} />: the tree, keyboard navigable. */
export function LineageTree({ lineage, currentId }) {
  const top = useMemo(() => buildTree(lineage), [lineage]);
  const [collapsed, setCollapsed] = useState(() => new Set());
  const [focusId, setFocusId] = useState(currentId);
  const ref = useRef(null);
  const toggle = (id) => setCollapsed((before) => {
    const next = new Set(before);
    if (next.has(id)) next.delete(id); else next.add(id);
    return next;
  });
  const focus = (id) => {
    setFocusId(id);
    ref.current?.querySelector(`[data-asset-id="${CSS.escape(id)}"]`)?.focus();
  };
  const order = visibleOrder(top, collapsed);
  const shown = (id) => order.some(({ item }) => item.node.asset.id === id);
  // The one node in the tab order: the last focused, else this asset, else the top.
  const tabId = [focusId, currentId].find(shown) ?? top.node.asset.id;
  const onKeyDown = (event) => {
    const at = order.findIndex(({ item }) => item.node.asset.id === tabId);
    if (at < 0) return;
    const { item, parent } = order[at];
    const id = item.node.asset.id;
    const hasChildren = item.children.length > 0;
    let handled = true;
    switch (event.key) {
      case 'ArrowDown': if (at + 1 < order.length) focus(order[at + 1].item.node.asset.id); break;
      case 'ArrowUp': if (at > 0) focus(order[at - 1].item.node.asset.id); break;
      case 'Home': focus(order[0].item.node.asset.id); break;
      case 'End': focus(order[order.length - 1].item.node.asset.id); break;
      case 'ArrowRight':
        if (hasChildren && collapsed.has(id)) toggle(id);
        else if (hasChildren) focus(item.children[0].node.asset.id);
        break;
      case 'ArrowLeft':
        if (hasChildren && !collapsed.has(id)) toggle(id);
        else if (parent) focus(parent.node.asset.id);
        break;
      default: handled = false;
    }
    if (handled) event.preventDefault();
  };
  const total = 1 + lineage.ancestors.length + lineage.descendants.length;
  return html`<div class="lineage">
    <p class="hint" id="lineage-help">${total === 1
      ? 'No copies, remixes or versions yet: this asset is the whole of its lineage.'
      : `${total} assets. Arrow keys move through the tree; Enter opens an asset.`}</p>
    <ul role="tree" class="lineage-tree" aria-label="Lineage" aria-describedby="lineage-help"
        ref=${ref} onKeyDown=${onKeyDown}>
      <${Node} item=${top} level=${1} index=${0} count=${1} currentId=${currentId} focusId=${tabId}
        collapsed=${collapsed} onFocus=${setFocusId} toggle=${toggle} />
    </ul>
    ${lineage.truncated && html`<p class="hint">The tree is long: only the nearest 50 levels and 500 descendants are shown.</p>`}
  </div>`;
}
