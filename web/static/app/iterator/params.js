// A model's parameters as a form: one control per parameter the model lists in
// `generationModels` (its type, limits, choices and default), checked here before
// anything is sent, with the server's own refusals shown under the same control.
import { html } from '../lib.js';
import { Field, fieldErrors } from '../ui.js';

/** The fields every form asks of a model's parameters (GenerationParameter). */
export const PARAMETER_FIELDS = 'name type default description minimum maximum choices maxLength';

/** {name: default} for every parameter of `model`. */
export function defaults(model) {
  const values = {};
  for (const p of model?.parameters ?? []) values[p.name] = p.default;
  return values;
}

/** The parameter's name as a label: "output_quality" reads "Output quality". */
export function labelOf(parameter) {
  const words = parameter.name.replace(/_/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function limits(parameter) {
  const { minimum: low, maximum: high } = parameter;
  if (low !== null && low !== undefined && high !== null && high !== undefined) return `between ${low} and ${high}`;
  if (low !== null && low !== undefined) return `at least ${low}`;
  if (high !== null && high !== undefined) return `at most ${high}`;
  return null;
}

/**
 * What is wrong with `value` for `parameter` ("Output quality must be between 0 and
 * 100."), or null. The rules are the server's (services/generation/catalog.py).
 */
export function problemWith(parameter, value) {
  const label = labelOf(parameter);
  switch (parameter.type) {
    case 'INT':
    case 'FLOAT': {
      if (value === '' || value === null || value === undefined || Number.isNaN(value)) {
        return `${label} needs a number.`;
      }
      if (!Number.isFinite(value)) return `${label} must be a finite number.`;
      if (parameter.type === 'INT' && !Number.isInteger(value)) return `${label} must be a whole number.`;
      const low = parameter.minimum;
      const high = parameter.maximum;
      if ((low !== null && low !== undefined && value < low) || (high !== null && high !== undefined && value > high)) {
        return `${label} must be ${limits(parameter)}.`;
      }
      return null;
    }
    case 'STRING':
      if (typeof value !== 'string') return `${label} must be text.`;
      if (parameter.maxLength !== null && parameter.maxLength !== undefined && value.length > parameter.maxLength) {
        return `${label} is ${value.length} characters long; the limit is ${parameter.maxLength}.`;
      }
      return null;
    case 'BOOLEAN':
      return typeof value === 'boolean' ? null : `${label} must be on or off.`;
    case 'ENUM':
      return (parameter.choices ?? []).some((c) => c === value) ? null : `${label} must be one of ${parameter.choices.join(', ')}.`;
    default:
      return null;
  }
}

/** {name: message} for every parameter of `model` whose value in `values` is refused. */
export function problemsWith(model, values) {
  const problems = {};
  for (const p of model?.parameters ?? []) {
    const problem = problemWith(p, values[p.name]);
    if (problem) problems[p.name] = problem;
  }
  return problems;
}

function hintOf(parameter) {
  const range = limits(parameter);
  const parts = [parameter.description];
  if (range) parts.push(`From ${parameter.minimum ?? '…'} to ${parameter.maximum ?? '…'}.`);
  if (parameter.maxLength) parts.push(`At most ${parameter.maxLength} characters.`);
  parts.push(`Default: ${String(parameter.default)}.`);
  return parts.join(' ');
}

/**
 * The controls of `model`'s parameters. `values` {name: value}; onChange(name, value);
 * `problems` {name: message} found here; `error` the server's UserErrors, shown per
 * parameter; `skip` names parameters drawn elsewhere (the refine dialog's strength).
 */
export function ParamsFields({ model, values, onChange, problems = {}, error, skip = [] }) {
  const parameters = (model?.parameters ?? []).filter((p) => !skip.includes(p.name));
  if (!parameters.length) return html`<p class="hint">This model takes no settings.</p>`;
  return html`<div class="params-grid">${parameters.map((p) => {
    const mine = problems[p.name];
    const server = fieldErrors(error, p.name).length > 0;
    return html`<div key=${`${model.key}.${p.name}`} class=${`param param-${p.type.toLowerCase()}`}>
      <${Field} label=${labelOf(p)} name=${p.name} error=${error} hint=${hintOf(p)}>${(id) => control(p, id, values[p.name], onChange, Boolean(mine) || server)}</${Field}>
      ${mine && html`<small class="field-error" role="alert" data-param=${p.name}>${mine}</small>`}
    </div>`;
  })}</div>`;
}

function control(p, id, value, onChange, invalid) {
  const common = { id, name: p.name, 'aria-invalid': invalid ? 'true' : undefined };
  switch (p.type) {
    case 'INT':
    case 'FLOAT':
      return html`<input ...${common} type="number" inputmode=${p.type === 'INT' ? 'numeric' : 'decimal'}
        step=${p.type === 'INT' ? 1 : 'any'} min=${p.minimum ?? undefined} max=${p.maximum ?? undefined}
        value=${Number.isNaN(value) || value === null ? '' : value}
        onInput=${(e) => onChange(p.name, e.currentTarget.value === '' ? NaN : Number(e.currentTarget.value))} />`;
    case 'BOOLEAN':
      return html`<select ...${common} value=${value ? 'true' : 'false'}
        onChange=${(e) => onChange(p.name, e.currentTarget.value === 'true')}>
        <option value="true">On</option><option value="false">Off</option>
      </select>`;
    case 'ENUM': {
      const index = (p.choices ?? []).findIndex((c) => c === value);
      return html`<select ...${common} value=${String(index)}
        onChange=${(e) => onChange(p.name, p.choices[Number(e.currentTarget.value)])}>
        ${p.choices.map((choice, i) => html`<option key=${String(choice)} value=${String(i)}>${String(choice)}</option>`)}
      </select>`;
    }
    default:
      return html`<input ...${common} type="text" maxlength=${p.maxLength ?? undefined} value=${value ?? ''}
        onInput=${(e) => onChange(p.name, e.currentTarget.value)} />`;
  }
}
