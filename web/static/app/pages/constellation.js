// The constellation map: the team's assets where the API placed them (clusters of
// shared tags, in bands by category), coloured by cluster, joined by their lineage,
// drawn on a canvas by the vendored force-graph library (pan and zoom with the mouse
// or the buttons, hover for a label, click through to the asset, drag to pin).
// The same map as a list of clusters with their assets as links, below it, is how
// keyboard and screen-reader users read and open it. Kept current by the library feed.
import { html, useEffect, useMemo, useRef, useState, useId } from '../lib.js';
import { mutate, useQuery, describeError } from '../api.js';
import { useFeed } from '../live.js';
import { navigate } from '../router.js';
import { team } from '../viewer.js';
import { Empty, ErrorBox, Loading, toast } from '../ui.js';

const FORCE_GRAPH = '/static/vendor/force-graph@1.52.0/dist/force-graph.min.js';

const CONSTELLATION = `query Constellation($teamId: ID!) {
  constellation(teamId: $teamId) {
    teamId
    nodes { id name kind category x y clusterId pinned }
    edges { sourceId targetId evolutionType }
    clusters { id label size x y pinned category }
  }
}`;

const LIBRARY_EVENTS = `subscription ConstellationLibrary($teamId: ID!, $after: String) {
  libraryEvents(teamId: $teamId, after: $after) { cursor kind assetId changes }
}`;

const PIN = `mutation PinOnMap($input: SetConstellationPositionInput!) {
  setConstellationPosition(input: $input) { node { id x y pinned clusterId } userErrors { code field message } }
}`;

/** Cluster colours: distinct, and each at least 3:1 against the map's background. */
const PALETTE = ['#3b4cc0', '#c2410c', '#047857', '#b4236c', '#0369a1', '#8a5a00', '#6d28d9', '#b3261e', '#0f766e', '#4d5562'];
const NO_CLUSTER = '#7a7f8c';
const BACKGROUND = '#fbfaf7';
const NODE_RADIUS = 6; // screen pixels, whatever the zoom

let loading = null;

/**
 * force-graph's UMD build, loaded once. It adds its own small stylesheet as inline
 * <style> elements when it runs, which the page's policy (style-src 'self') refuses
 * with a violation each; those rules are in app.css instead, so the inline ones are
 * left out of <head> while the module runs.
 */
function loadForceGraph() {
  if (globalThis.ForceGraph) return Promise.resolve(globalThis.ForceGraph);
  if (!loading) {
    const head = document.head;
    head.appendChild = function appendChild(node) {
      if (node instanceof HTMLStyleElement) return node;
      return Node.prototype.appendChild.call(this, node);
    };
    loading = import(FORCE_GRAPH)
      .then(() => globalThis.ForceGraph)
      .finally(() => { delete head.appendChild; })
      .catch((error) => { loading = null; throw error; });
  }
  return loading;
}

export default function ConstellationPage() {
  const teamId = team.value?.id;
  const map = useQuery(CONSTELLATION, { teamId }, [teamId]);
  const pending = useRef(null);
  useFeed(LIBRARY_EVENTS, { teamId }, {
    enabled: Boolean(teamId),
    // New, changed (tags move assets) or deleted assets: read the map once per burst.
    onEvent: (event) => {
      if (event.kind === 'SNAPSHOT' || event.kind === 'ASSET_SHARED') return;
      clearTimeout(pending.current);
      pending.current = setTimeout(map.reload, 400);
    },
  }, [teamId]);
  useEffect(() => () => clearTimeout(pending.current), []);
  const constellation = map.data?.constellation;
  const colours = useMemo(() => {
    const byCluster = new Map();
    (constellation?.clusters ?? []).forEach((cluster, i) => byCluster.set(cluster.id, PALETTE[i % PALETTE.length]));
    return byCluster;
  }, [constellation]);

  return html`<section class="page constellation-page">
    <h1>Constellation</h1>
    <p class="hint">${team.value?.name ?? 'The team'}’s library as a map: assets sharing tags gather in clusters, in bands by category; lines follow their lineage.</p>
    ${map.error && html`<${ErrorBox} error=${map.error} onRetry=${map.reload} />`}
    ${!map.data && !map.error && html`<${Loading} label="Drawing the map…" />`}
    ${map.data && !constellation && html`<${Empty}>Only members of the team can see its map.</${Empty}>`}
    ${constellation && constellation.nodes.length === 0 && html`<${Empty}>No assets yet: the map fills in as the team makes images and clips.</${Empty}>`}
    ${constellation && constellation.nodes.length > 0 && html`
      <${ConstellationMap} key=${constellation.teamId} constellation=${constellation} colours=${colours} />
      <${ClusterList} constellation=${constellation} colours=${colours} />`}
  </section>`;
}

// -- the canvas ----------------------------------------------------------------------------

function graphData(constellation) {
  const placed = constellation.nodes.filter((node) => node.x !== null && node.y !== null);
  const ids = new Set(placed.map((node) => node.id));
  return {
    // fx/fy hold every node where the API put it: the layout is the server's, not a simulation's.
    nodes: placed.map((node) => ({ ...node, fx: node.x, fy: node.y })),
    links: constellation.edges
      .filter((edge) => ids.has(edge.sourceId) && ids.has(edge.targetId))
      .map((edge) => ({ source: edge.sourceId, target: edge.targetId, evolutionType: edge.evolutionType })),
  };
}

function tooltip(node, cluster) {
  const box = document.createElement('div');
  const name = document.createElement('strong');
  name.textContent = node.name;
  const about = document.createElement('div');
  about.textContent = [cluster?.label, node.kind.toLowerCase(), node.pinned ? 'pinned' : null].filter(Boolean).join(' · ');
  box.append(name, about);
  return box;
}

function ConstellationMap({ constellation, colours }) {
  const holder = useRef(null);
  const graphRef = useRef(null);
  const clustersRef = useRef(new Map());
  const [failed, setFailed] = useState(null);
  const [ready, setReady] = useState(false);
  const legendId = useId();
  clustersRef.current = new Map(constellation.clusters.map((cluster) => [cluster.id, cluster]));
  const colourRef = useRef(colours);
  colourRef.current = colours;

  useEffect(() => {
    let graph = null;
    let observer = null;
    let gone = false;
    loadForceGraph().then((ForceGraph) => {
      if (gone || !holder.current) return;
      const element = holder.current;
      graph = new ForceGraph(element);
      graphRef.current = graph;
      const colourOf = (node) => colourRef.current.get(node.clusterId) ?? NO_CLUSTER;
      graph
        .width(element.clientWidth)
        .height(element.clientHeight)
        .backgroundColor(BACKGROUND)
        .nodeId('id')
        .nodeLabel((node) => tooltip(node, clustersRef.current.get(node.clusterId)))
        .nodeCanvasObject((node, ctx, scale) => {
          const r = NODE_RADIUS / scale;
          ctx.beginPath();
          ctx.arc(node.x, node.y, r, 0, 2 * Math.PI);
          ctx.fillStyle = colourOf(node);
          ctx.fill();
          ctx.lineWidth = (node.pinned ? 2.5 : 1) / scale;
          ctx.strokeStyle = node.pinned ? '#1d1f24' : '#ffffff';
          ctx.stroke();
        })
        .nodePointerAreaPaint((node, colour, ctx, scale) => {
          ctx.beginPath();
          ctx.arc(node.x, node.y, (NODE_RADIUS + 3) / scale, 0, 2 * Math.PI);
          ctx.fillStyle = colour;
          ctx.fill();
        })
        .linkColor(() => 'rgba(40, 44, 60, 0.55)')
        .linkWidth(1.2)
        .linkDirectionalArrowLength(5)
        .linkDirectionalArrowRelPos(0.85)
        .d3Force('charge', null)
        .d3Force('center', null)
        .cooldownTicks(0)
        .warmupTicks(0)
        .onNodeClick((node) => navigate(`/library/assets/${encodeURIComponent(node.id)}`))
        .onNodeDragEnd((node, moved) => pin(node, { x: node.x - moved.x, y: node.y - moved.y }))
        .onRenderFramePost((ctx, scale) => drawClusterLabels(ctx, scale, graph.graphData().nodes, clustersRef.current));
      graph.d3Force('link').strength(0);
      graph.graphData(graphData(constellation));
      graph.zoomToFit(0, 48);
      observer = new ResizeObserver(() => graph.width(element.clientWidth).height(element.clientHeight));
      observer.observe(element);
      // For the browser tests: where an asset's node is on the map (map units) and on
      // screen now (viewport pixels).
      window.studioConstellation = {
        positionOf(id) {
          const node = graph.graphData().nodes.find((n) => n.id === id);
          return node ? { x: node.x, y: node.y } : null;
        },
        screenOf(id) {
          const node = graph.graphData().nodes.find((n) => n.id === id);
          if (!node) return null;
          const at = graph.graph2ScreenCoords(node.x, node.y);
          const box = element.querySelector('canvas').getBoundingClientRect();
          return { x: box.left + at.x, y: box.top + at.y };
        },
      };
      setReady(true);
    }).catch((error) => {
      if (!gone) setFailed(error);
    });
    return () => {
      gone = true;
      observer?.disconnect();
      if (graph) graph._destructor();
      graphRef.current = null;
      delete window.studioConstellation;
    };
  }, []);

  // A newer map (the feed): the same view, the new positions.
  const first = useRef(true);
  useEffect(() => {
    if (first.current) { first.current = false; return; }
    graphRef.current?.graphData(graphData(constellation));
  }, [constellation]);

  async function pin(node, from) {
    const x = Math.round(node.x * 1000) / 1000;
    const y = Math.round(node.y * 1000) / 1000;
    try {
      const payload = await mutate(PIN, { input: { assetId: node.id, x, y } });
      Object.assign(node, { pinned: true, x: payload.node?.x ?? x, y: payload.node?.y ?? y });
      node.fx = node.x;
      node.fy = node.y;
      toast(`Pinned “${node.name}” where you put it; new layouts leave it there.`, 'success');
    } catch (error) {
      Object.assign(node, { x: from.x, y: from.y, fx: from.x, fy: from.y });
      toast(`“${node.name}” was not pinned: ${describeError(error)}`, 'error', 8000);
    }
  }

  const zoomBy = (factor) => {
    const graph = graphRef.current;
    if (graph) graph.zoom(graph.zoom() * factor, 250);
  };
  const focusCluster = (cluster) => {
    const graph = graphRef.current;
    if (!graph) return;
    graph.centerAt(cluster.x, cluster.y, 400);
    graph.zoom(Math.max(graph.zoom(), 3), 400);
  };

  const count = constellation.nodes.length;
  return html`<div class="constellation">
    <div class="map-tools" role="group" aria-label="Map view">
      <button type="button" onClick=${() => zoomBy(1.5)} disabled=${!ready}>Zoom in</button>
      <button type="button" onClick=${() => zoomBy(1 / 1.5)} disabled=${!ready}>Zoom out</button>
      <button type="button" onClick=${() => graphRef.current?.zoomToFit(400, 48)} disabled=${!ready}>Fit the map</button>
      <span class="hint">Drag the background to pan, scroll to zoom, drag an asset to pin it, click it to open it.</span>
    </div>
    ${failed && html`<${ErrorBox} error=${{ message: 'The map could not be drawn. The list below has every asset.' }}
      title="No map" onRetry=${() => location.reload()} />`}
    <div class="constellation-canvas" ref=${holder} role="img" data-ready=${ready ? 'true' : 'false'}
      aria-label=${`Map of ${count === 1 ? '1 asset' : `${count} assets`} in ${constellation.clusters.length} clusters; they are listed by cluster below.`}></div>
    <div class="legend" aria-labelledby=${legendId}>
      <h2 id=${legendId}>Clusters</h2>
      <ul class="legend-list">
        ${constellation.clusters.map((cluster) => html`<li key=${cluster.id} data-cluster-id=${cluster.id}>
          <span class="swatch" aria-hidden="true" style=${{ background: colours.get(cluster.id) }}></span>
          <button type="button" class="link" aria-label=${`Show ${cluster.label} on the map`} disabled=${!ready}
            onClick=${() => focusCluster(cluster)}>${cluster.label}</button>
          <span class="legend-size">${cluster.size === 1 ? '1 asset' : `${cluster.size} assets`}${cluster.category ? ` · ${cluster.category}` : ''}</span>
        </li>`)}
      </ul>
      <p class="hint">Arrows run from an asset to the ones made from it. A dark ring marks an asset pinned by hand.</p>
    </div>
  </div>`;
}

/** Each cluster's label just above its highest node, at a constant size on screen. */
function drawClusterLabels(ctx, scale, nodes, clusters) {
  const tops = new Map();
  for (const node of nodes) {
    if (!node.clusterId) continue;
    const top = tops.get(node.clusterId);
    if (!top || node.y < top.y) tops.set(node.clusterId, { x: node.x, y: node.y });
  }
  ctx.save();
  ctx.font = `600 ${12 / scale}px system-ui, sans-serif`;
  ctx.textAlign = 'center';
  ctx.textBaseline = 'bottom';
  ctx.fillStyle = '#1d1f24';
  for (const [id, top] of tops) {
    const cluster = clusters.get(id);
    if (!cluster) continue;
    ctx.fillText(cluster.label, cluster.x, top.y - (NODE_RADIUS + 6) / scale);
  }
  ctx.restore();
}

// -- the list ------------------------------------------------------------------------------

/** The map as text: each cluster and its assets (links), with each asset's lineage parent. */
function ClusterList({ constellation, colours }) {
  const headingId = useId();
  const byId = new Map(constellation.nodes.map((node) => [node.id, node]));
  const parents = new Map(constellation.edges.map((edge) => [edge.targetId, edge]));
  const groups = constellation.clusters.map((cluster) => ({
    cluster, nodes: constellation.nodes.filter((node) => node.clusterId === cluster.id),
  }));
  const loose = constellation.nodes.filter((node) => !node.clusterId || !constellation.clusters.some((c) => c.id === node.clusterId));
  if (loose.length) groups.push({ cluster: { id: 'none', label: 'Not placed yet' }, nodes: loose });
  const item = (node) => {
    const edge = parents.get(node.id);
    const parent = edge && byId.get(edge.sourceId);
    return html`<li key=${node.id}>
      <a href=${`/library/assets/${encodeURIComponent(node.id)}`}>${node.name}</a>
      <span class="meta"> ${node.kind.toLowerCase()}${parent ? ` · ${edge.evolutionType.toLowerCase()} of ${parent.name}` : ''}${node.pinned ? ' · pinned' : ''}</span>
    </li>`;
  };
  return html`<section class="cluster-list" aria-labelledby=${headingId}>
    <h2 id=${headingId}>Assets by cluster</h2>
    ${groups.map(({ cluster, nodes }) => html`<section key=${cluster.id} class="cluster-group" data-cluster-id=${cluster.id}>
      <h3><span class="swatch" aria-hidden="true" style=${{ background: colours.get(cluster.id) ?? NO_CLUSTER }}></span>
        ${cluster.label} <span class="legend-size">(${nodes.length})</span></h3>
      <ul>${nodes.map(item)}</ul>
    </section>`)}
  </section>`;
}
