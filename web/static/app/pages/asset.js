// An asset of the library (/library/assets/:assetId): its image or playable clip, its
// fields, editing them, sharing, duplicate, remix, regenerate, delete, and its lineage
// as a tree. Live: the team's `libraryEvents` feed, kept to this asset and its lineage,
// reads it again when it changes (a rename elsewhere, a generation finishing).
import { html, useEffect, useRef, useState } from '../lib.js';
import { mutate, useQuery } from '../api.js';
import { useFeed } from '../live.js';
import { navigate } from '../router.js';
import { viewer } from '../viewer.js';
import { ConfirmDialog, ErrorBox, Loading, toast } from '../ui.js';
import { ASSET, LINEAGE, LIBRARY_EVENTS, DELETE_ASSET } from '../asset/queries.js';
import { AssetFields, EditAssetForm, words } from '../asset/details.js';
import { ShareDialog } from '../asset/share.js';
import { DuplicateDialog, RemixDialog, RegenerateDialog } from '../asset/evolve.js';
import { LineageTree } from '../asset/lineage.js';

const POLL_MS = 3000;

/** A signed URL kept while only its signature changes, so a re-read does not reload the image. */
function useSteadyUrl(url) {
  const kept = useRef(url);
  const path = (u) => (u ? new URL(u, location.origin).pathname : null);
  if (path(url) !== path(kept.current)) kept.current = url;
  return kept.current;
}

function Media({ asset }) {
  const file = useSteadyUrl(asset.fileUrl);
  const poster = useSteadyUrl(asset.thumbnailUrl);
  if (asset.status === 'GENERATING') {
    return html`<div class="asset-placeholder" role="status"><span class="spinner" aria-hidden="true"></span>
      Generating… It shows here when done.</div>`;
  }
  if (asset.status === 'FAILED') {
    return html`<div class="asset-placeholder asset-failed" role="alert"><strong>The generation failed.</strong>
      ${asset.error && html`<p>${asset.error}</p>`}<p>Use Generate to try again.</p></div>`;
  }
  if (!file && !poster) {
    return html`<div class="asset-placeholder">${asset.status === 'DRAFT'
      ? 'A draft: no file yet. Generate it to make one.' : 'No file is stored for it.'}</div>`;
  }
  if (asset.kind === 'VIDEO') {
    return html`<video class="asset-video" controls preload="metadata" playsinline src=${file} poster=${poster}
      aria-label=${`Clip: ${asset.name}`} width=${asset.width ?? undefined} height=${asset.height ?? undefined}></video>`;
  }
  if (asset.kind === 'AUDIO') {
    return html`<audio controls preload="metadata" src=${file} aria-label=${`Sound: ${asset.name}`}></audio>`;
  }
  return html`<img class="asset-image" src=${file ?? poster} alt=${asset.description || asset.prompt || asset.name}
    width=${asset.width ?? undefined} height=${asset.height ?? undefined} decoding="async" />`;
}

function NotFound() {
  return html`<section class="page asset-missing">
    <h1>Asset not found</h1>
    <p>There is no asset at this address that you may see: it was deleted, or it belongs to a team
      you are not in and is not shared with you. If someone sent you this link, ask them to share it with you.</p>
    <p><a href="/library">Go to the library</a> · <a href="/shared">Assets shared with you</a></p>
  </section>`;
}

function Deleted() {
  return html`<section class="page asset-missing">
    <h1>This asset was deleted</h1>
    <p>Someone deleted it while you had it open. Copies, remixes and versions made from it are still in the library.</p>
    <p><a href="/library">Go to the library</a></p>
  </section>`;
}

/** What can be done here, and why not when it cannot. */
function abilities(asset, me) {
  const edit = asset.viewerPermission !== 'VIEW';
  const member = Boolean(asset.team);
  const generable = asset.kind === 'IMAGE' || asset.kind === 'VIDEO';
  const why = [];
  const may = {
    edit,
    share: edit,
    duplicate: edit && member && asset.canDuplicate && asset.status === 'READY',
    remix: edit && member && asset.canRemix,
    regenerate: edit && member && generable && asset.status !== 'GENERATING'
      && (asset.status !== 'READY' || asset.canRemix),
    delete: asset.viewerPermission === 'ADMIN' || (edit && asset.creator?.id === me?.id),
  };
  if (!edit) why.push('You may view this asset only: changing, copying or remixing it needs EDIT permission.');
  else if (!member) why.push('Copies, remixes and new versions are made in the asset’s own team; only its members can make them.');
  else {
    if (!asset.canDuplicate) why.push('Copying is turned off for this asset.');
    else if (asset.status !== 'READY') why.push('Only a ready asset can be copied.');
    if (!asset.canRemix) why.push('Remixing and new versions are turned off for this asset.');
    if (asset.status === 'GENERATING') why.push('It is being generated now.');
  }
  return { may, why };
}

function AssetView({ asset, lineage, reload, setAsset, deletingHere }) {
  const me = viewer.value;
  const [editing, setEditing] = useState(false);
  const [open, setOpen] = useState(null);
  const [deleteError, setDeleteError] = useState(null);
  const [deleting, setDeleting] = useState(false);
  const { may, why } = abilities(asset, me);
  const close = () => setOpen(null);
  useEffect(() => { document.title = `${asset.name} · Storyboard Studio`; }, [asset.name]);
  const children = (lineage?.descendants ?? []).filter((node) => node.parentId === asset.id).length;
  const below = lineage?.descendants.length ?? 0;
  const remove = async () => {
    setDeleting(true);
    setDeleteError(null);
    deletingHere.current = true;
    try {
      await mutate(DELETE_ASSET, { input: { id: asset.id } });
      setOpen(null);
      // Back up its lineage when it has a parent; otherwise to the library.
      if (asset.parent) {
        toast(`“${asset.name}” deleted. This is the asset it came from.`, 'success');
        navigate(`/library/assets/${encodeURIComponent(asset.parent.id)}`, { replace: true });
      } else {
        toast(`“${asset.name}” deleted.`, 'success');
        navigate('/library', { replace: true });
      }
    } catch (caught) {
      deletingHere.current = false;
      setDeleteError(caught);
    } finally {
      setDeleting(false);
    }
  };
  const generateLabel = asset.status === 'READY' ? 'Regenerate' : asset.status === 'FAILED' ? 'Generate again' : 'Generate';
  return html`<article class="page asset-page" data-asset-id=${asset.id} data-status=${asset.status}>
    <p class="crumbs"><a href="/library">Library</a>${asset.team && html` / <span>${asset.team.name}</span>`}</p>
    <h1 class="asset-title">${asset.name}</h1>
    <p class="asset-sub">
      <span class=${`status status-${asset.status.toLowerCase()}`} data-status=${asset.status}>${words(asset.status)}</span>
      · ${words(asset.kind)} · version ${asset.version} · ${words(asset.evolutionType)}
      ${asset.parent && html` of <a href=${`/library/assets/${encodeURIComponent(asset.parent.id)}`}>${asset.parent.name}</a>`}
    </p>
    <div class="asset-layout">
      <figure class="asset-media">
        <${Media} asset=${asset} />
        ${asset.fileUrl && html`<figcaption><a href=${asset.fileUrl} target="_blank" rel="noopener">Open the full file</a></figcaption>`}
      </figure>
      <div class="asset-side">
        <div class="asset-actions" role="group" aria-label="Actions">
          ${may.edit && html`<button type="button" aria-expanded=${String(editing)} onClick=${() => setEditing(!editing)}>Edit details</button>`}
          ${may.share && html`<button type="button" onClick=${() => setOpen('share')}>Share…</button>`}
          ${may.edit && html`<button type="button" disabled=${!may.duplicate} onClick=${() => setOpen('duplicate')}>Duplicate…</button>`}
          ${may.edit && html`<button type="button" disabled=${!may.remix} onClick=${() => setOpen('remix')}>Remix…</button>`}
          ${may.edit && html`<button type="button" disabled=${!may.regenerate} onClick=${() => setOpen('regenerate')}>${generateLabel}…</button>`}
          ${may.delete && html`<button type="button" class="danger" onClick=${() => setOpen('delete')}>Delete…</button>`}
        </div>
        ${why.length > 0 && html`<ul class="hint why-not">${why.map((w) => html`<li key=${w}>${w}</li>`)}</ul>`}
        <h2>Details</h2>
        ${editing
          ? html`<${EditAssetForm} asset=${asset} onCancel=${() => setEditing(false)}
              onSaved=${(saved) => { setAsset(saved); setEditing(false); toast('Details saved.', 'success'); }} />`
          : html`<${AssetFields} asset=${asset} />`}
      </div>
    </div>
    <section class="asset-lineage" aria-labelledby="lineage-heading">
      <h2 id="lineage-heading">Lineage</h2>
      ${lineage ? html`<${LineageTree} lineage=${lineage} currentId=${asset.id} />` : html`<${Loading} label="Reading the lineage…" />`}
    </section>
    <${ShareDialog} asset=${asset} open=${open === 'share'} onClose=${close} onChanged=${reload} />
    <${DuplicateDialog} asset=${asset} open=${open === 'duplicate'} onClose=${close} />
    <${RemixDialog} asset=${asset} open=${open === 'remix'} onClose=${close} />
    <${RegenerateDialog} asset=${asset} open=${open === 'regenerate'} onClose=${close} onStarted=${reload} />
    <${ConfirmDialog} open=${open === 'delete'} title=${`Delete “${asset.name}”?`} busy=${deleting} error=${deleteError}
      onClose=${() => { setOpen(null); setDeleteError(null); }} onConfirm=${remove} confirmLabel="Delete the asset"
      consequences=${html`<ul>
        <li>The asset goes, with ${asset.viewerPermission !== 'ADMIN' ? 'its shares'
          : asset.shares.length === 1 ? 'its one share' : `its ${asset.shares.length} shares`},
          its views and its places in collections. This cannot be undone.</li>
        <li>${below === 0
          ? 'Nothing was made from it: no copies, remixes or versions lose their parent.'
          : `The ${below === 1 ? 'asset' : `${below} assets`} made from it (copies, remixes, versions) stay;
             ${children === 1 ? 'its child becomes' : `its ${children} children become`} the root of ${children === 1 ? 'its' : 'their'} own lineage.`}</li>
        <li>Its file is deleted only when nothing else uses it (a copy shares it, as does a shot image added from it).</li>
        ${asset.sourceProject && html`<li>The project “${asset.sourceProject.title}” it came from is not touched.</li>`}
        ${asset.status === 'GENERATING' && html`<li>Its generation, still running, is canceled.</li>`}
      </ul>`} />
  </article>`;
}

export default function AssetPage({ assetId }) {
  const read = useQuery(ASSET, { id: assetId }, [assetId]);
  const family = useQuery(LINEAGE, { id: assetId }, [assetId]);
  const [deleted, setDeleted] = useState(false);
  // Set while this page deletes the asset: its own deletion on the feed is no news.
  const deletingHere = useRef(false);
  const asset = read.data?.asset ?? null;
  const lineage = family.data?.lineage ?? null;
  const teamId = asset?.team?.id ?? null;
  const timers = useRef({});
  const later = (name, run) => {
    clearTimeout(timers.current[name]);
    timers.current[name] = setTimeout(run, 150);
  };
  useEffect(() => () => Object.values(timers.current).forEach(clearTimeout), []);
  const inLineage = (id) => Boolean(id) && (id === assetId || lineage?.ancestors.some((n) => n.asset.id === id)
    || lineage?.descendants.some((n) => n.asset.id === id));
  useFeed(LIBRARY_EVENTS, { teamId }, {
    enabled: Boolean(teamId),
    onEvent: (event) => {
      if (event.kind === 'SNAPSHOT') {
        // Subscribed: read again what may have changed before the feed started.
        later('asset', read.reload);
        later('lineage', family.reload);
        return;
      }
      if (event.assetId === assetId) {
        if (event.kind === 'ASSET_DELETED') {
          if (!deletingHere.current) setDeleted(true);
          return;
        }
        later('asset', read.reload);
        later('lineage', family.reload);
      } else if (inLineage(event.assetId) || inLineage(event.asset?.parent?.id)) {
        later('lineage', family.reload);
      }
    },
    onError: () => later('asset', read.reload),
  }, [teamId]);
  // Without the team's feed (an asset shared from another team), follow a generation by reading again.
  const generating = asset?.status === 'GENERATING';
  useEffect(() => {
    if (teamId || !generating) return undefined;
    const timer = setInterval(() => { read.reload(); family.reload(); }, POLL_MS);
    return () => clearInterval(timer);
  }, [teamId, generating]);
  if (deleted) return html`<${Deleted} />`;
  if (read.error && !read.data) {
    if (read.error.code === 'BAD_USER_INPUT') return html`<${NotFound} />`;
    return html`<${ErrorBox} error=${read.error} title="This asset could not be read" onRetry=${read.reload} />`;
  }
  if (!read.data) return html`<${Loading} label="Reading the asset…" />`;
  if (!asset) return html`<${NotFound} />`;
  return html`<${AssetView} key=${asset.id} asset=${asset} lineage=${lineage} deletingHere=${deletingHere}
    reload=${() => { read.reload(); family.reload(); }}
    setAsset=${(saved) => read.setData((data) => ({ ...data, asset: { ...data.asset, ...saved } }))} />`;
}
