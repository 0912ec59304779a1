import { nullToUndefined, readBoolean, readNumber, z, type ConfigIssue, type OptionGroup, type ResolvedConfig } from '@tunekit/kernel';

/**
 * Defaults of the keys this plugin owns. PPO: LLaMA-Factory's (FinetuningArguments) and, for the TRL PPOConfig
 * values LLaMA-Factory leaves at TRL's defaults, those (init_kl_coef, cliprange, cliprange_value, vf_coef, gamma, lam,
 * under ms-swift's key names). GRPO: ms-swift's (RLHFArguments / GRPOConfig).
 */
export const RL_DEFAULTS = {
  ppo_buffer_size: 1,
  ppo_epochs: 4,
  ppo_score_norm: false,
  ppo_target: 6.0,
  ppo_whiten_rewards: false,
  reward_model: undefined,
  reward_model_adapters: undefined,
  reward_model_quantization_bit: undefined,
  reward_model_type: 'lora',
  reward_api_timeout: 60,
  kl_coef: 0.2,
  cliprange: 0.2,
  cliprange_value: 0.2,
  vf_coef: 0.1,
  gamma: 1.0,
  lam: 0.95,
  rlhf_type: undefined,
  num_generations: 8,
  max_completion_length: 512,
  num_iterations: 1,
  epsilon: 0.2,
  epsilon_high: undefined,
  beta: 0.04,
  loss_type: 'grpo',
  reward_funcs: [] as string[],
  reward_weights: undefined,
  cosine_min_len_value_wrong: 0.0,
  cosine_max_len_value_wrong: -0.5,
  cosine_min_len_value_correct: 1.0,
  cosine_max_len_value_correct: 0.5,
  cosine_max_len: undefined,
  repetition_n_grams: 3,
  repetition_max_penalty: -1.0,
  soft_max_length: undefined,
  soft_cache_length: undefined,
} as const;

/** A list written as YAML list, comma-separated string or (ms-swift's CLI) space-separated string. */
function readSpacedList(value: unknown): unknown {
  const v = nullToUndefined(value);
  if (typeof v === 'string') return v.split(/[\s,]+/).filter(Boolean);
  return v;
}

const number = (schema: z.ZodNumber, value: number, description: string) =>
  z.preprocess((v) => readNumber(nullToUndefined(v)), schema.default(value)).describe(description);
const optionalNumber = (schema: z.ZodNumber, description: string) => z.preprocess((v) => readNumber(nullToUndefined(v)), schema.optional()).describe(description);
const int = () => z.number().int();
const flag = (value: boolean, description: string) => z.preprocess(readBoolean, z.boolean().default(value)).describe(description);

const ppoShape = {
  ppo_buffer_size: number(int().min(1), RL_DEFAULTS.ppo_buffer_size, 'PPO: mini-batches (of per_device_train_batch_size x gradient_accumulation_steps prompts) in each rollout buffer.'),
  ppo_epochs: number(int().min(1), RL_DEFAULTS.ppo_epochs, 'PPO: optimisation passes over each rollout buffer.'),
  ppo_score_norm: flag(RL_DEFAULTS.ppo_score_norm, 'PPO: normalise the reward-model scores by their running mean and std.'),
  ppo_target: number(z.number().gt(0), RL_DEFAULTS.ppo_target, 'PPO: target KL of the adaptive KL controller.'),
  ppo_whiten_rewards: flag(RL_DEFAULTS.ppo_whiten_rewards, 'PPO: whiten the per-token rewards before computing advantages.'),
  reward_model: z.preprocess(nullToUndefined, z.string().min(1).optional()).describe('PPO: the reward model: an rm adapter folder (lora), a model folder (full) or a URL (api).'),
  reward_model_adapters: z.preprocess(nullToUndefined, z.string().min(1).optional()).describe('PPO: adapters applied to a full reward model.'),
  reward_model_quantization_bit: optionalNumber(int(), 'PPO: quantize the reward model to 4 or 8 bits.'),
  reward_model_type: z.preprocess(nullToUndefined, z.enum(['lora', 'full', 'api']).default('lora')).describe('PPO: lora (an rm adapter on the policy\'s base), full (a model folder) or api (an HTTP endpoint).'),
  reward_api_timeout: number(z.number().gt(0), RL_DEFAULTS.reward_api_timeout, 'PPO with reward_model_type api: seconds to wait for the endpoint.'),
  kl_coef: number(z.number().min(0), RL_DEFAULTS.kl_coef, 'PPO: initial coefficient of the per-token KL penalty (TRL init_kl_coef).'),
  cliprange: number(z.number().gt(0), RL_DEFAULTS.cliprange, 'PPO: clip range of the policy ratio.'),
  cliprange_value: number(z.number().gt(0), RL_DEFAULTS.cliprange_value, 'PPO: clip range of the value predictions.'),
  vf_coef: number(z.number().min(0), RL_DEFAULTS.vf_coef, 'PPO: weight of the value loss.'),
  gamma: number(z.number().min(0).max(1), RL_DEFAULTS.gamma, 'PPO: discount factor of GAE.'),
  lam: number(z.number().min(0).max(1), RL_DEFAULTS.lam, 'PPO: lambda of GAE.'),
};

const grpoShape = {
  rlhf_type: z.preprocess(nullToUndefined, z.string().min(1).optional()).describe("ms-swift's algorithm key; tunekit selects it with stage (grpo)."),
  num_generations: number(int().min(2), RL_DEFAULTS.num_generations, 'GRPO: completions sampled per prompt (the group size G).'),
  max_completion_length: number(int().min(1), RL_DEFAULTS.max_completion_length, 'GRPO: most tokens per completion.'),
  num_iterations: number(int().min(1), RL_DEFAULTS.num_iterations, 'GRPO: consecutive steps (one update each) that reuse each batch of completions.'),
  epsilon: number(z.number().gt(0).lt(1), RL_DEFAULTS.epsilon, 'GRPO: clip range of the policy ratio.'),
  epsilon_high: optionalNumber(z.number().gt(0), 'GRPO: upper clip range (default epsilon).'),
  beta: number(z.number().min(0), RL_DEFAULTS.beta, 'GRPO: weight of the KL term to the reference model (0: no reference model).'),
  loss_type: z.preprocess(nullToUndefined, z.enum(['grpo', 'bnpo', 'dr_grpo']).default('grpo')).describe('GRPO: how token losses are averaged: grpo (per completion, then over completions), bnpo (over all tokens), dr_grpo (over rows x max_completion_length).'),
  reward_funcs: z.preprocess(readSpacedList, z.array(z.string().min(1)).default([])).describe('GRPO: reward functions (reward-function ids): accuracy, format, cosine, repetition, soft_overlong, or a plugin\'s.'),
  reward_weights: z.preprocess(readSpacedList, z.array(z.preprocess(readNumber, z.number())).optional()).describe('GRPO: one weight per reward function (default 1 each).'),
  cosine_min_len_value_wrong: number(z.number(), RL_DEFAULTS.cosine_min_len_value_wrong, 'cosine reward: value of a wrong answer of length 0.'),
  cosine_max_len_value_wrong: number(z.number(), RL_DEFAULTS.cosine_max_len_value_wrong, 'cosine reward: value of a wrong answer of the maximum length.'),
  cosine_min_len_value_correct: number(z.number(), RL_DEFAULTS.cosine_min_len_value_correct, 'cosine reward: value of a correct answer of length 0.'),
  cosine_max_len_value_correct: number(z.number(), RL_DEFAULTS.cosine_max_len_value_correct, 'cosine reward: value of a correct answer of the maximum length.'),
  cosine_max_len: optionalNumber(int().min(1), 'cosine reward: the maximum length (default max_completion_length).'),
  repetition_n_grams: number(int().min(1), RL_DEFAULTS.repetition_n_grams, 'repetition reward: n-gram size.'),
  repetition_max_penalty: number(z.number().max(0), RL_DEFAULTS.repetition_max_penalty, 'repetition reward: penalty of a completion made of one repeated n-gram.'),
  soft_max_length: optionalNumber(int().min(1), 'soft_overlong reward: the length past which the penalty is -1 (default max_completion_length).'),
  soft_cache_length: optionalNumber(int().min(1), 'soft_overlong reward: the window before soft_max_length over which the penalty grows.'),
};

function show(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

const PPO_KEYS = Object.keys(ppoShape);
const GRPO_KEYS = Object.keys(grpoShape).filter((key) => key !== 'rlhf_type');

/** The cross-key rules of the RL keys: keys of the other stage, ms-swift's rlhf_type, reward weights, sizes. */
export function checkRlOptions(config: ResolvedConfig, report: (issue: ConfigIssue) => void): void {
  const stage = (config.stage as string | undefined) ?? 'sft';
  const defaults = RL_DEFAULTS as Record<string, unknown>;
  const changed = (key: string) => config[key] !== undefined && JSON.stringify(config[key]) !== JSON.stringify(defaults[key]);
  if (stage !== 'ppo') {
    for (const key of PPO_KEYS.filter(changed)) report({ key, message: `${key} is ${show(config[key])} but stage is ${show(stage)}; it only applies to stage ppo. Remove ${key} or set stage: ppo.` });
  }
  if (stage !== 'grpo') {
    for (const key of GRPO_KEYS.filter(changed)) report({ key, message: `${key} is ${show(config[key])} but stage is ${show(stage)}; it only applies to stage grpo. Remove ${key} or set stage: grpo.` });
  }
  if (config.rlhf_type !== undefined) {
    const wanted = String(config.rlhf_type);
    if (wanted !== stage) {
      report({ key: 'rlhf_type', message: `rlhf_type is ${show(wanted)} (ms-swift's key) but stage is ${show(stage)}; tunekit selects the algorithm with stage. Set stage: ${wanted} and remove rlhf_type.` });
    }
  }
  if (stage === 'grpo' && config.load_best_model_at_end === true) {
    report({ key: 'load_best_model_at_end', message: 'load_best_model_at_end is true but stage grpo keeps no best checkpoint (it has no evaluation loss). Remove load_best_model_at_end.' });
  }
  if (stage === 'grpo') {
    const funcs = (config.reward_funcs as string[] | undefined) ?? [];
    if (!funcs.length) report({ key: 'reward_funcs', message: 'stage grpo needs at least one reward function: set reward_funcs (e.g. [accuracy] or [format]).' });
    const weights = config.reward_weights as number[] | undefined;
    if (weights && weights.length !== funcs.length) {
      report({ key: 'reward_weights', message: `reward_weights has ${weights.length} values for ${funcs.length} reward functions (${funcs.join(', ')}); give one weight per function.` });
    }
    const batch = config.per_device_train_batch_size as number | undefined;
    const generations = (config.num_generations as number | undefined) ?? RL_DEFAULTS.num_generations;
    if (batch !== undefined && batch % generations !== 0) {
      report({ key: 'per_device_train_batch_size', message: `per_device_train_batch_size (${batch}) counts completions and must be a multiple of num_generations (${generations}); set it to ${Math.max(1, Math.round(batch / generations)) * generations}.` });
    }
    if (config.do_sample === false || config.temperature === 0) {
      report({ key: config.do_sample === false ? 'do_sample' : 'temperature', message: 'stage grpo samples num_generations different completions per prompt; greedy decoding (do_sample: false or temperature: 0) makes them identical, so every advantage is 0. Set do_sample: true and temperature > 0.' });
    }
    const soft = config.soft_cache_length as number | undefined;
    const softMax = (config.soft_max_length as number | undefined) ?? (config.max_completion_length as number | undefined) ?? RL_DEFAULTS.max_completion_length;
    if (funcs.includes('soft_overlong') && (soft === undefined || soft >= softMax)) {
      report({ key: 'soft_cache_length', message: `the soft_overlong reward needs soft_cache_length below soft_max_length (${softMax}); got ${show(soft)}.` });
    }
  }
  if (stage === 'ppo') {
    if (config.reward_model === undefined) report({ key: 'reward_model', message: 'stage ppo needs a reward_model: an rm adapter folder (reward_model_type: lora), a model folder (full) or a URL (api).' });
    if (config.reward_model_type === 'lora' && config.finetuning_type !== undefined && config.finetuning_type !== 'lora') {
      report({ key: 'reward_model_type', message: `reward_model_type lora puts the reward adapter on the policy's base model, which needs finetuning_type: lora (got ${show(config.finetuning_type)}). Use reward_model_type: full with a model folder.` });
    }
    if (config.reward_model_quantization_bit !== undefined) {
      report({ key: 'reward_model_quantization_bit', message: `reward_model_quantization_bit is ${show(config.reward_model_quantization_bit)}, but tunekit does not quantize the reward model. Remove reward_model_quantization_bit.` });
    }
    if (config.reward_model_adapters !== undefined && config.reward_model_type !== 'full') {
      report({ key: 'reward_model_adapters', message: 'reward_model_adapters apply to a full reward model only. Set reward_model_type: full, or remove reward_model_adapters.' });
    }
  }
}

export const options: readonly OptionGroup[] = [
  { group: 'ppo', shape: ppoShape, check: checkRlOptions },
  { group: 'grpo', shape: grpoShape },
];

/** Every key the plugin owns (the kernel's catalog lists them). */
export const RL_KEYS: readonly string[] = [...Object.keys(ppoShape), ...Object.keys(grpoShape)];
