// Making new assets from this one: duplicate (`duplicateAsset`), remix (`remixAsset`,
// a DRAFT with a new prompt, generated at once if the person wants) and regenerate
// (`regenerateAsset`: a READY asset as a new version, a DRAFT or FAILED one in place),
// with the model and its parameters built from `generationModels`. Each then shows the
// asset it made or is generating.
import { html, useEffect, useState } from '../lib.js';
import { gql, mutate, UserErrors } from '../api.js';
import { navigate } from '../router.js';
import { Dialog, ErrorBox, Field, toast } from '../ui.js';
import {
  DUPLICATE_ASSET, REMIX_ASSET, REGENERATE_ASSET, GENERATION_MODELS,
} from './queries.js';

const MODEL_KIND = { IMAGE: 'TEXT_TO_IMAGE', VIDEO: 'IMAGE_TO_VIDEO' };
const assetPath = (id) => `/library/assets/${encodeURIComponent(id)}`;

/** Whether `model` is the one the asset was made with (it records the Replicate name). */
const madeWith = (asset, model) => asset.model === model.key || asset.model === model.replicateModel;

let modelsRead = null;
function readModels() {
  modelsRead ??= gql(GENERATION_MODELS).then((data) => data.generationModels).catch((error) => {
    modelsRead = null;
    throw error;
  });
  return modelsRead;
}

/** The errors whose field is not one of `names` (shown above the form). */
function generalOf(error, names) {
  if (!(error instanceof UserErrors)) return error;
  const rest = error.errors.filter((e) => !names.includes(e.field?.[e.field.length - 1]));
  return rest.length ? new UserErrors(rest) : null;
}

/** The model and parameters chosen: {model, params} for regenerateAsset. */
export function chosenGeneration(models, choice) {
  const model = models.find((m) => m.key === choice.model);
  if (!model) return { model: null, params: null };
  const params = {};
  for (const p of model.parameters) {
    const raw = choice.params[p.name];
    if (raw === undefined || raw === '') continue;
    if (p.type === 'INT') params[p.name] = Number.parseInt(raw, 10);
    else if (p.type === 'FLOAT') params[p.name] = Number.parseFloat(raw);
    else if (p.type === 'BOOLEAN') params[p.name] = raw === 'true';
    else if (p.type === 'ENUM') params[p.name] = p.choices[Number(raw)];
    else params[p.name] = raw;
  }
  return { model: model.key, params: Object.keys(params).length ? params : null };
}

function ParamInput({ param, value, stored, onChange, error }) {
  const before = stored ?? param.default;
  const shownBefore = typeof before === 'object' ? JSON.stringify(before) : String(before);
  const hint = `${param.description} Empty: ${shownBefore}${stored !== undefined ? ' (as before)' : ' (default)'}.`;
  return html`<${Field} label=${param.name.replace(/_/g, ' ')} name=${param.name} error=${error} hint=${hint}>${(id) => {
    const change = (event) => onChange(param.name, event.currentTarget.value);
    if (param.type === 'ENUM') {
      return html`<select id=${id} value=${value ?? ''} onChange=${change}>
        <option value="">As before (${shownBefore})</option>
        ${param.choices.map((choice, i) => html`<option key=${String(choice)} value=${String(i)}>${String(choice)}</option>`)}
      </select>`;
    }
    if (param.type === 'BOOLEAN') {
      return html`<select id=${id} value=${value ?? ''} onChange=${change}>
        <option value="">As before (${shownBefore})</option><option value="true">Yes</option><option value="false">No</option>
      </select>`;
    }
    if (param.type === 'INT' || param.type === 'FLOAT') {
      return html`<input id=${id} type="number" inputmode="decimal" value=${value ?? ''} onInput=${change}
        placeholder=${shownBefore} min=${param.minimum ?? undefined} max=${param.maximum ?? undefined}
        step=${param.type === 'INT' ? '1' : 'any'} />`;
    }
    return html`<input id=${id} value=${value ?? ''} onInput=${change} placeholder=${shownBefore}
      maxlength=${param.maxLength ?? undefined} />`;
  }}</${Field}>`;
}

/** The model picker and its parameters' form; `choice` = {model, params: {name: text}}. */
function GenerationChoice({ asset, models, choice, setChoice, error }) {
  const kind = MODEL_KIND[asset.kind];
  const usable = models.filter((m) => m.kinds.includes(kind));
  const model = usable.find((m) => m.key === choice.model);
  return html`<fieldset class="generation-choice">
    <legend>Generation</legend>
    <${Field} label="Model" name="model" error=${error} hint=${model?.description}>${(id) => html`
      <select id=${id} value=${choice.model} onChange=${(e) => setChoice({ model: e.currentTarget.value, params: {} })}>
        ${usable.map((m) => html`<option key=${m.key} value=${m.key}>${m.key}</option>`)}
      </select>`}</${Field}>
    ${model && html`<details class="params">
      <summary>Parameters (${model.parameters.length})</summary>
      ${model.parameters.map((p) => html`<${ParamInput} key=${p.name} param=${p} value=${choice.params[p.name]}
          stored=${madeWith(asset, model) ? asset.generationParams?.[p.name] : undefined} error=${error}
          onChange=${(name, value) => setChoice({ ...choice, params: { ...choice.params, [name]: value } })} />`)}
    </details>`}
  </fieldset>`;
}

function useModels(asset, open) {
  const [models, setModels] = useState(null);
  const [error, setError] = useState(null);
  const [choice, setChoice] = useState({ model: '', params: {} });
  useEffect(() => {
    if (!open) return;
    readModels().then((all) => {
      setModels(all);
      const usable = all.filter((m) => m.kinds.includes(MODEL_KIND[asset.kind]));
      const own = usable.find((m) => madeWith(asset, m))
        ?? usable.find((m) => m.defaultFor.includes(MODEL_KIND[asset.kind])) ?? usable[0];
      setChoice({ model: own?.key ?? '', params: {} });
    }).catch(setError);
  }, [open, asset.id]);
  return { models, error, choice, setChoice };
}

async function generate(assetId, models, choice) {
  const { model, params } = chosenGeneration(models, choice);
  const payload = await mutate(REGENERATE_ASSET, { input: { assetId, model, params } });
  return payload.asset;
}

/** Duplicate: an exact copy, READY at once; then its page. */
export function DuplicateDialog({ asset, open, onClose }) {
  const [branch, setBranch] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const { asset: copy } = await mutate(DUPLICATE_ASSET, { input: { assetId: asset.id, branchName: branch.trim() || null } });
      toast('Copy made. This is the copy.', 'success');
      onClose();
      navigate(assetPath(copy.id));
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  return html`<${Dialog} open=${open} onClose=${onClose} title="Duplicate">
    <form onSubmit=${submit} aria-label="Duplicate" novalidate>
      <p>An exact copy, ready at once, sharing this asset's file. It becomes version ${asset.version + 1}
        in this asset's lineage, made by you, in the team ${asset.team?.name ?? 'of this asset'}.</p>
      <${ErrorBox} error=${generalOf(error, ['branchName'])} title="Not copied" />
      <${Field} label="Branch" name="branchName" error=${error} hint=${`Empty: the same branch (“${asset.branchName}”).`}>${(id) => html`
        <input id=${id} value=${branch} onInput=${(e) => setBranch(e.currentTarget.value)} maxlength="100" />`}</${Field}>
      <div class="actions">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button type="submit" class="primary" disabled=${busy}>${busy ? 'Copying…' : 'Make a copy'}</button>
      </div>
    </form>
  </${Dialog}>`;
}

/** Remix: a new prompt (and a note, a branch), generated at once unless unticked. */
export function RemixDialog({ asset, open, onClose }) {
  const [form, setForm] = useState({ prompt: asset.prompt ?? '', note: '', branch: '', now: true });
  const { models, error: modelsError, choice, setChoice } = useModels(asset, open);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (key) => (event) => {
    const target = event.currentTarget;
    setForm((f) => ({ ...f, [key]: target.type === 'checkbox' ? target.checked : target.value }));
  };
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    let remix;
    try {
      ({ asset: remix } = await mutate(REMIX_ASSET, { input: {
        assetId: asset.id, prompt: form.prompt, evolutionNote: form.note.trim() || null, branchName: form.branch.trim() || null,
      } }));
    } catch (caught) {
      setError(caught);
      setBusy(false);
      return;
    }
    if (form.now && models) {
      try {
        await generate(remix.id, models, choice);
        toast('Remix made; it is being generated.', 'success');
      } catch (caught) {
        toast(`The remix is saved as a draft but was not generated: ${caught.message} Use Generate on its page.`, 'error', 10000);
      }
    } else {
      toast('Remix saved as a draft. Generate it when ready.', 'success');
    }
    setBusy(false);
    onClose();
    navigate(assetPath(remix.id));
  };
  return html`<${Dialog} open=${open} onClose=${onClose} title="Remix">
    <form onSubmit=${submit} aria-label="Remix" novalidate>
      <p>A new asset with your prompt, version ${asset.version + 1} in this asset's lineage; the words you add
        and remove are recorded.</p>
      <${ErrorBox} error=${generalOf(error, ['prompt', 'evolutionNote', 'branchName'])} title="Not remixed" />
      <${Field} label="Prompt" name="prompt" error=${error}>${(id) => html`
        <textarea id=${id} value=${form.prompt} onInput=${set('prompt')} maxlength="10000" rows="3"></textarea>`}</${Field}>
      <${Field} label="Note on what changes" name="evolutionNote" error=${error}>${(id) => html`
        <input id=${id} value=${form.note} onInput=${set('note')} />`}</${Field}>
      <${Field} label="Branch" name="branchName" error=${error} hint=${`Empty: the same branch (“${asset.branchName}”).`}>${(id) => html`
        <input id=${id} value=${form.branch} onInput=${set('branch')} maxlength="100" />`}</${Field}>
      ${MODEL_KIND[asset.kind] && html`<label class="check"><input type="checkbox" checked=${form.now} onChange=${set('now')} /> Generate it now</label>`}
      ${form.now && MODEL_KIND[asset.kind] && (modelsError
        ? html`<${ErrorBox} error=${modelsError} title="The models could not be read" />`
        : models && html`<${GenerationChoice} asset=${asset} models=${models} choice=${choice} setChoice=${setChoice} error=${null} />`)}
      <div class="actions">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button type="submit" class="primary" disabled=${busy}>${busy ? 'Remixing…' : form.now ? 'Remix and generate' : 'Save remix as a draft'}</button>
      </div>
    </form>
  </${Dialog}>`;
}

/** Regenerate (READY: a new version) or generate (DRAFT, FAILED: in place). */
export function RegenerateDialog({ asset, open, onClose, onStarted }) {
  const { models, error: modelsError, choice, setChoice } = useModels(asset, open);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const inPlace = asset.status !== 'READY';
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const made = await generate(asset.id, models ?? [], choice);
      onClose();
      if (made.id !== asset.id) {
        toast('A new version is being generated. This is it.', 'success');
        navigate(assetPath(made.id));
      } else {
        toast('Generating…', 'success');
        onStarted();
      }
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  const paramNames = ['model', ...(models ?? []).flatMap((m) => m.parameters.map((p) => p.name))];
  return html`<${Dialog} open=${open} onClose=${onClose} title=${inPlace ? 'Generate' : 'Regenerate'}>
    <form onSubmit=${submit} aria-label=${inPlace ? 'Generate' : 'Regenerate'} novalidate>
      <p>${inPlace
        ? 'Generates this asset from its prompt; it shows here when done.'
        : `Generates it again as a new version (v${asset.version + 1}) in its lineage, with a new seed; this one stays as it is.`}
        ${asset.kind === 'VIDEO' && ' A clip is made from the image it came from.'}</p>
      <${ErrorBox} error=${modelsError ?? generalOf(error, paramNames)} title=${modelsError ? 'The models could not be read' : 'Not started'} />
      ${models && html`<${GenerationChoice} asset=${asset} models=${models} choice=${choice} setChoice=${setChoice} error=${error} />`}
      <div class="actions">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button type="submit" class="primary" disabled=${busy || !models}>${busy ? 'Starting…' : inPlace ? 'Generate' : 'Regenerate'}</button>
      </div>
    </form>
  </${Dialog}>`;
}
