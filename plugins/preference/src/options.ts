import { LOSS, nullToUndefined, readNumber, z, type ConfigIssue, type OptionGroup, type ResolvedConfig } from '@tunekit/kernel';
import { REFERENCE_FREE_LOSSES } from './contributions';
import { PREFERENCE_DEFAULTS } from './defaults';

const REFERENCE_FREE = REFERENCE_FREE_LOSSES;
/** Losses a stage other than dpo selects; never a pref_loss value. */
const STAGE_LOSSES: Readonly<Record<string, string>> = { kto: 'kto', pairwise: 'rm' };
/** Stages that load a reference model (LLaMA-Factory: dpo unless reference-free, kto, ppo; grpo unless beta is 0). */
const REFERENCE_STAGES = ['dpo', 'kto', 'ppo', 'grpo'];

const number = (schema: z.ZodNumber, value: number, description: string) =>
  z.preprocess((v) => readNumber(nullToUndefined(v)), schema.default(value)).describe(description);

const shape = {
  pref_beta: number(z.number().gt(0), PREFERENCE_DEFAULTS.pref_beta, 'beta of the preference loss: how strongly the policy is held near the reference model.'),
  pref_ftx: number(z.number().min(0), PREFERENCE_DEFAULTS.pref_ftx, 'weight of the SFT loss (per-token NLL of the chosen response) added to the DPO or KTO loss.'),
  pref_bco_weight: number(z.number().min(0), PREFERENCE_DEFAULTS.pref_bco_weight, 'weight of the Binary Classifier Optimization loss mixed into DPO.'),
  pref_loss: z
    .preprocess(nullToUndefined, z.string().min(1).default(PREFERENCE_DEFAULTS.pref_loss))
    .describe('DPO loss (a loss id): sigmoid, hinge, ipo, kto_pair, orpo or simpo.'),
  dpo_label_smoothing: number(
    z.number().min(0).max(0.5),
    PREFERENCE_DEFAULTS.dpo_label_smoothing,
    'cDPO label smoothing in [0, 0.5] for the sigmoid loss: the assumed probability that a preference label is flipped.',
  ),
  kto_chosen_weight: number(z.number().gt(0), PREFERENCE_DEFAULTS.kto_chosen_weight, 'KTO weight of the losses of desirable examples.'),
  kto_rejected_weight: number(z.number().gt(0), PREFERENCE_DEFAULTS.kto_rejected_weight, 'KTO weight of the losses of undesirable examples.'),
  simpo_gamma: number(z.number(), PREFERENCE_DEFAULTS.simpo_gamma, 'SimPO target reward margin.'),
  ld_alpha: z
    .preprocess((v) => readNumber(nullToUndefined(v)), z.number().min(0).max(1).optional())
    .describe('LD-DPO alpha in [0, 1]: weight of the policy log-probs of response tokens past the shorter response of a pair.'),
  ref_model: z.preprocess(nullToUndefined, z.string().min(1).optional()).describe('reference model for DPO / KTO (a folder or hub id); default: the policy without its adapters, or a copy of the base model.'),
  ref_model_adapters: z.preprocess(nullToUndefined, z.string().min(1).optional()).describe('adapters of the reference model, applied to ref_model.'),
  ref_model_quantization_bit: z
    .preprocess((v) => readNumber(nullToUndefined(v)), z.union([z.literal(4), z.literal(8)], { error: 'only 4-bit or 8-bit quantization is accepted' }).optional())
    .describe('quantize the reference model to 4 or 8 bits.'),
};

function show(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

/** The loss id a preference stage uses: pref_loss for dpo, `kto` for kto, `pairwise` for rm; undefined otherwise. */
export function preferenceLossId(config: ResolvedConfig): string | undefined {
  const stage = config.stage;
  if (stage === 'dpo') return (config.pref_loss as string | undefined) ?? PREFERENCE_DEFAULTS.pref_loss;
  if (stage === 'kto') return 'kto';
  if (stage === 'rm') return 'pairwise';
  return undefined;
}

/** Whether the run loads a reference model, as LLaMA-Factory decides it. */
export function usesReferenceModel(config: ResolvedConfig): boolean {
  const stage = config.stage as string | undefined;
  if (stage === 'dpo') return !REFERENCE_FREE.includes((config.pref_loss as string | undefined) ?? PREFERENCE_DEFAULTS.pref_loss);
  // grpo (@tunekit/plugin-rl) reads the reference only for its KL term, beta (ms-swift's default 0.04).
  if (stage === 'grpo') return config.beta !== 0;
  return stage === 'kto' || stage === 'ppo';
}

/** The cross-key rules of the preference keys: LLaMA-Factory's FinetuningArguments checks, plus keys set to no effect. */
export function checkPreferenceOptions(config: ResolvedConfig, report: (issue: ConfigIssue) => void): void {
  const stage = (config.stage as string | undefined) ?? 'sft';
  const loss = (config.pref_loss as string | undefined) ?? PREFERENCE_DEFAULTS.pref_loss;
  const isDpo = stage === 'dpo';
  const num = (key: keyof typeof PREFERENCE_DEFAULTS) => (config[key] as number | undefined) ?? (PREFERENCE_DEFAULTS[key] as number);

  if (STAGE_LOSSES[loss]) {
    report({
      key: 'pref_loss',
      message: `pref_loss '${loss}' is the loss of stage ${STAGE_LOSSES[loss]}, which selects it by itself. Set stage: ${STAGE_LOSSES[loss]} and remove pref_loss, or choose a DPO loss: sigmoid, hinge, ipo, kto_pair, orpo, simpo.`,
    });
  }
  if (loss !== PREFERENCE_DEFAULTS.pref_loss && !isDpo) {
    report({ key: 'pref_loss', message: `pref_loss is '${loss}' but stage is ${show(stage)}; it only applies to stage dpo. Remove pref_loss or set stage: dpo.` });
  }
  // LLaMA-Factory: "`dpo_label_smoothing` is only valid for sigmoid loss function."
  const smoothing = num('dpo_label_smoothing');
  if (smoothing > 1e-6 && (loss !== 'sigmoid' || !isDpo)) {
    report({
      key: 'dpo_label_smoothing',
      message: `dpo_label_smoothing is ${smoothing} but ${isDpo ? `pref_loss is '${loss}'` : `stage is ${show(stage)}`}; it only applies to the sigmoid loss of stage dpo. Remove dpo_label_smoothing or set pref_loss: sigmoid.`,
    });
  }
  if (num('simpo_gamma') !== PREFERENCE_DEFAULTS.simpo_gamma && (loss !== 'simpo' || !isDpo)) {
    report({ key: 'simpo_gamma', message: `simpo_gamma is ${num('simpo_gamma')} but the loss is not simpo (stage ${show(stage)}, pref_loss '${loss}'). Remove simpo_gamma or set stage: dpo and pref_loss: simpo.` });
  }
  for (const key of ['kto_chosen_weight', 'kto_rejected_weight'] as const) {
    if (num(key) !== PREFERENCE_DEFAULTS[key] && stage !== 'kto') {
      report({ key, message: `${key} is ${num(key)} but stage is ${show(stage)}; it only applies to stage kto. Remove ${key} or set stage: kto.` });
    }
  }
  if (num('pref_ftx') > 0 && !isDpo && stage !== 'kto') {
    report({ key: 'pref_ftx', message: `pref_ftx is ${num('pref_ftx')} but stage is ${show(stage)}; the SFT term is only added in stages dpo and kto. Remove pref_ftx.` });
  }
  if (num('pref_bco_weight') > 0) {
    report({
      key: 'pref_bco_weight',
      message: `pref_bco_weight is ${num('pref_bco_weight')}, but tunekit does not implement the BCO term yet (it needs a running mean of the rewards across steps). Remove pref_bco_weight.`,
    });
  }
  if (config.ld_alpha !== undefined && !isDpo) {
    report({ key: 'ld_alpha', message: `ld_alpha is ${show(config.ld_alpha)} but stage is ${show(stage)}; LD-DPO only applies to stage dpo. Remove ld_alpha or set stage: dpo.` });
  }

  // The reference model.
  const usesReference = usesReferenceModel(config);
  for (const key of ['ref_model', 'ref_model_adapters', 'ref_model_quantization_bit'] as const) {
    if (config[key] === undefined || usesReference) continue;
    const why =
      isDpo
        ? `pref_loss '${loss}' is reference-free (${REFERENCE_FREE.join(' and ')} use no reference model)`
        : stage === 'grpo'
          ? 'beta is 0, so stage grpo has no KL term and loads no reference model'
          : `stage ${show(stage)} uses no reference model (only ${REFERENCE_STAGES.join(', ')} do)`;
    report({ key, message: `${key} is set but ${why}. Remove ${key}.` });
  }
  if (usesReference && config.ref_model === undefined) {
    for (const key of ['ref_model_adapters', 'ref_model_quantization_bit'] as const) {
      if (config[key] !== undefined) {
        report({ key, message: `${key} is set but ref_model is not; it applies to the model ref_model names. Set ref_model (the base model of those adapters), or remove ${key}.` });
      }
    }
  }
  if (config.ref_model_quantization_bit !== undefined && usesReference) {
    report({ key: 'ref_model_quantization_bit', message: `ref_model_quantization_bit is ${show(config.ref_model_quantization_bit)}, but tunekit does not quantize the reference model. Remove ref_model_quantization_bit.` });
  }
  // LLaMA-Factory: "Cannot use PiSSA for current training stage." (PiSSA changes the base weights the reference reads.)
  if (config.pissa_init === true && (stage === 'kto' || (isDpo && usesReference))) {
    report({ key: 'pissa_init', message: `pissa_init is true but stage ${stage} ${stage === 'kto' ? '' : `with pref_loss '${loss}' `}uses the base model as its reference, which PiSSA modifies. Set pissa_init: false, or use a reference-free loss (orpo, simpo).` });
  }
}

export const options: readonly OptionGroup[] = [
  { group: 'preference', shape, selects: { pref_loss: LOSS }, check: checkPreferenceOptions },
];
