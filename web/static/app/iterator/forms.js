// The two ways to ask for an iteration: generate six from a prompt with a chosen
// model and its settings, and refine a chosen image (image-to-image) with a prompt
// and a strength. Both check the settings here first, then show what the server
// refused under the control it concerns.
import { html, useState, useMemo } from '../lib.js';
import { mutate } from '../api.js';
import { Dialog, ErrorBox, Field, toast } from '../ui.js';
import { ParamsFields, defaults, problemsWith, problemWith } from './params.js';
import { GENERATE } from './queries.js';
import { imageName, previewOf } from './tiles.js';

/** How long Generate stays disabled after a batch started, in milliseconds. */
const COOL_DOWN_MS = 3000;

export const VARIANTS = 6;

/** Whether the server refused one of the model's settings (the details must show it). */
function hasParamErrors(error) {
  return Boolean(error?.errors?.some((e) => e.field?.includes('params')));
}
const STRENGTH = 'prompt_strength';

function modelsOf(models, kind) {
  return (models ?? []).filter((m) => m.kinds.includes(kind));
}

function defaultModel(models, kind) {
  return models.find((m) => m.defaultFor.includes(kind)) ?? models[0] ?? null;
}

function useModelChoice(all, kind) {
  const models = useMemo(() => modelsOf(all, kind), [all, kind]);
  const [key, setKey] = useState(() => defaultModel(models, kind)?.key ?? '');
  const model = models.find((m) => m.key === key) ?? null;
  const [values, setValues] = useState(() => defaults(model));
  const choose = (next) => {
    setKey(next);
    setValues(defaults(models.find((m) => m.key === next)));
  };
  const set = (name, value) => setValues((v) => ({ ...v, [name]: value }));
  return { models, model, values, choose, set };
}

function ModelPicker({ models, model, choose, error }) {
  return html`<${Field} label="Model" name="model" error=${error}
      hint=${model?.description}>${(id) => html`
    <select id=${id} name="model" value=${model?.key ?? ''} onChange=${(e) => choose(e.currentTarget.value)}>
      ${models.map((m) => html`<option key=${m.key} value=${m.key}>${m.key}</option>`)}
    </select>`}</${Field}>`;
}

/**
 * Generate the shot's next iteration of six. onStarted(iteration) with the new
 * iteration (its six PENDING images) as the server answered.
 */
export function GenerateForm({ shot, models: all, onStarted }) {
  const choice = useModelChoice(all, 'TEXT_TO_IMAGE');
  const [prompt, setPrompt] = useState(shot.initialPrompt ?? '');
  const [problems, setProblems] = useState({});
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function submit(event) {
    event.preventDefault();
    const found = problemsWith(choice.model, choice.values);
    setProblems(found);
    setError(null);
    if (Object.keys(found).length) {
      const form = event.currentTarget;
      setTimeout(() => form.querySelector('[aria-invalid="true"]')?.focus(), 0);
      return;
    }
    setBusy(true);
    try {
      const payload = await mutate(GENERATE, {
        input: {
          shotId: shot.id, prompt: prompt.trim() || null, variantCount: VARIANTS,
          model: choice.model?.key ?? null, params: choice.values,
        },
      });
      onStarted(payload.iteration);
      toast(`Generating ${VARIANTS} images.`, 'success');
      // Each batch is paid for: clicks that follow at once (a double or triple click, an
      // impatient repeat) start nothing more. The button comes back after COOL_DOWN_MS.
      setTimeout(() => setBusy(false), COOL_DOWN_MS);
    } catch (caught) {
      setError(caught);
      setBusy(false);
    }
  }
  const change = (name, value) => {
    choice.set(name, value);
    if (problems[name]) {
      const parameter = choice.model.parameters.find((p) => p.name === name);
      setProblems((p) => ({ ...p, [name]: problemWith(parameter, value) }));
    }
  };
  return html`<form class="generate-form panel" onSubmit=${submit} novalidate aria-labelledby="generate-title">
    <h3 id="generate-title">Generate ${VARIANTS} new images</h3>
    <${Field} label="Prompt" name="prompt" error=${error}
        hint=${shot.initialPrompt ? 'Leave empty to use the shot\'s initial prompt.' : 'What the shot shows; the shot has no initial prompt yet.'}>${(id) => html`
      <textarea id=${id} name="prompt" rows="3" value=${prompt} placeholder=${shot.initialPrompt ?? ''}
        onInput=${(e) => setPrompt(e.currentTarget.value)}></textarea>`}</${Field}>
    <${ModelPicker} ...${choice} choose=${(key) => { setProblems({}); choice.choose(key); }} error=${error} />
    <details class="params" open=${Object.values(problems).some(Boolean) || hasParamErrors(error) ? true : undefined}>
      <summary>Settings of ${choice.model?.key ?? 'the model'}</summary>
      <${ParamsFields} model=${choice.model} values=${choice.values} onChange=${change}
        problems=${problems} error=${error} />
    </details>
    <${ErrorBox} error=${error} title="Could not start the generation" />
    ${Object.keys(problems).some((k) => problems[k]) && html`<p class="field-error" role="alert">Fix the settings marked above, then generate again.</p>`}
    <button type="submit" class="primary" disabled=${busy}>${busy ? 'Starting…' : `Generate ${VARIANTS}`}</button>
  </form>`;
}

/** Refine `image` (image-to-image): a prompt and a strength, with an image-to-image model. */
export function RefineDialog({ image, iterationPrompt, models: all, shotId, onClose, onStarted }) {
  const choice = useModelChoice(all, 'IMAGE_TO_IMAGE');
  const [prompt, setPrompt] = useState(iterationPrompt ?? '');
  const [problems, setProblems] = useState({});
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const strength = choice.model?.parameters.find((p) => p.name === STRENGTH);
  async function submit(event) {
    event.preventDefault();
    const found = problemsWith(choice.model, choice.values);
    setProblems(found);
    setError(null);
    if (Object.keys(found).length) return;
    setBusy(true);
    try {
      const payload = await mutate(GENERATE, {
        input: {
          shotId, parentImageId: image.id, prompt: prompt.trim() || null,
          variantCount: VARIANTS, model: choice.model?.key ?? null, params: choice.values,
        },
      });
      onStarted(payload.iteration);
      toast(`Refining ${imageName(image)}.`, 'success');
      onClose();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  }
  const value = choice.values[STRENGTH];
  return html`<${Dialog} open=${true} onClose=${onClose} title=${`Refine ${imageName(image)}`} className="refine-dialog">
    <form onSubmit=${submit} novalidate>
      <div class="refine-source">
        ${previewOf(image) && html`<img class="parent-thumb" src=${previewOf(image)} alt=${imageName(image)} />`}
        <p>${VARIANTS} new variants start from this image.</p>
      </div>
      <${Field} label="Prompt" name="prompt" error=${error}>${(id) => html`
        <textarea id=${id} name="prompt" rows="3" value=${prompt} onInput=${(e) => setPrompt(e.currentTarget.value)}></textarea>`}</${Field}>
      <${ModelPicker} ...${choice} error=${error} />
      ${strength && html`<${Field} label="Strength" name=${STRENGTH} error=${error}
          hint=${`${strength.description} From ${strength.minimum} to ${strength.maximum}.`}>${(id) => html`
        <div class="strength">
          <input id=${id} type="range" min=${strength.minimum} max=${strength.maximum} step="0.05"
            value=${Number.isFinite(value) ? value : strength.default}
            onInput=${(e) => choice.set(STRENGTH, Number(e.currentTarget.value))} />
          <output for=${id}>${Number.isFinite(value) ? value.toFixed(2) : ''}</output>
        </div>`}</${Field}>`}
      ${problems[STRENGTH] && html`<small class="field-error" role="alert">${problems[STRENGTH]}</small>`}
      <details class="params" open=${Object.values(problems).some(Boolean) || hasParamErrors(error) ? true : undefined}>
        <summary>More settings</summary>
        <${ParamsFields} model=${choice.model} values=${choice.values} skip=${[STRENGTH]}
          onChange=${choice.set} problems=${problems} error=${error} />
      </details>
      <${ErrorBox} error=${error} title="Could not start the refinement" />
      <div class="actions">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button type="submit" class="primary" disabled=${busy}>${busy ? 'Starting…' : `Refine into ${VARIANTS}`}</button>
      </div>
    </form>
  </${Dialog}>`;
}
