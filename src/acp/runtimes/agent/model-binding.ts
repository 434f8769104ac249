/**
 * Binding an agent session to the model role routing chose (addendum 2026-10 §3): through the agent's ACP
 * session config option of category "model" (`session/new` / `session/load` announce `configOptions`;
 * `session/set_config_option` sets one and answers the options as they now are). The binding counts as
 * verified only when the agent reads the chosen value back as the option's `currentValue`.
 *
 * - the agent offers no model option, or its option does not list the model → MODEL_NOT_ADVERTISED;
 * - the agent answers with another `currentValue` → MODEL_BINDING_UNVERIFIED.
 *
 * (An agent run with `llm` needs none of this: the gateway itself pins every model request of the session to
 * the chosen model, see launch.ts.)
 */
import { GatewayError } from '../../../wire/errors.js';
import { isObj } from '../../../util/is-object.js';

/** One ACP session config option, as far as binding needs it. */
export interface ConfigOption {
  id: string;
  category?: string;
  currentValue?: unknown;
  /** values offered: flat `{value}` entries, or groups `{options: [{value}]}` */
  values: string[];
}

export function readConfigOptions(res: unknown): ConfigOption[] {
  const list = isObj(res) && Array.isArray(res.configOptions) ? res.configOptions : [];
  const out: ConfigOption[] = [];
  for (const o of list) {
    if (!isObj(o) || typeof o.id !== 'string') continue;
    const values: string[] = [];
    const walk = (opts: unknown): void => {
      if (!Array.isArray(opts)) return;
      for (const v of opts) {
        if (!isObj(v)) continue;
        if (typeof v.value === 'string') values.push(v.value);
        else walk(v.options);
      }
    };
    walk(o.options);
    out.push({ id: o.id, ...(typeof o.category === 'string' ? { category: o.category } : {}), currentValue: o.currentValue, values });
  }
  return out;
}

/** The option that selects the model: category "model", else an option whose id is "model". */
export function modelOption(options: readonly ConfigOption[]): ConfigOption | undefined {
  return options.find((o) => o.category === 'model') ?? options.find((o) => o.id === 'model');
}

/** What set_config_option needs: `peer.request` bound to the agent's session. */
export type SetConfigOption = (configId: string, value: string) => Promise<unknown>;

/** Binds `model`; resolves when the agent reads it back, throws the addendum's codes otherwise. */
export async function bindModel(agentName: string, options: readonly ConfigOption[], model: string, set: SetConfigOption): Promise<void> {
  const opt = modelOption(options);
  if (!opt) throw new GatewayError('MODEL_NOT_ADVERTISED', `${agentName} offers no model option, so it cannot be bound to "${model}"`, { details: { model } });
  if (!opt.values.includes(model)) {
    throw new GatewayError('MODEL_NOT_ADVERTISED', `${agentName} does not offer model "${model}" (its model option lists ${opt.values.length} value(s))`, {
      details: { model, offered: opt.values.slice(0, 50) },
    });
  }
  if (opt.currentValue === model) return;
  const after = modelOption(readConfigOptions(await set(opt.id, model)));
  if (after?.currentValue !== model) {
    throw new GatewayError(
      'MODEL_BINDING_UNVERIFIED',
      `${agentName} was asked for model "${model}" but reports ${after ? JSON.stringify(after.currentValue) : 'no model option'}`,
      { details: { model } },
    );
  }
}
