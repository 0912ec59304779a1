import type { UnsupervisedExample } from '@tunekit/data';
import type { SessionOptions } from '@tunekit/graph';
import { listOf, resolveContribution, REWARD_FUNCTION, TunekitError, type DependencyContainer, type ResolvedConfig, type Stage, type StageContext, type Template, type Tuner } from '@tunekit/kernel';
import type { CausalLM } from '@tunekit/models';
import type { HfTokenizer } from '@tunekit/tokenizer';
import { loadEncoder, prepareTrainingData, setUpModel, trainAndEvaluate, trainingArgumentsFrom, trainingMachinery } from '@tunekit/trainer';
import { frozenReferenceModel, ValueHead } from '@tunekit/plugin-preference';
import { GrpoAlgorithm, type SelectedReward } from './grpo';
import type { GrpoLossType } from './losses';
import { PpoAlgorithm } from './ppo';
import { setUpRewardModel } from './reward-model';
import { RolloutLoop, type RlAlgorithm } from './loop';
import { RL_DEFAULTS } from './options';
import { PolicySampler, type RolloutSettings } from './rollout';
import { RowScorer } from './scorer';

const num = (config: ResolvedConfig, key: string, fallback: number): number => {
  const value = config[key];
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
};

/** The ids that end a completion: the tokenizer's eos ids, the model's and the template's stop words. */
export function endIds(tokenizer: HfTokenizer, template: Template, model: CausalLM): number[] {
  const raw = model.config.raw.eos_token_id;
  const fromModel = (Array.isArray(raw) ? raw : [raw]).filter((id): id is number => typeof id === 'number');
  const stops = template.stopWords.map((word) => tokenizer.tokenToId(word)).filter((id): id is number => id !== undefined);
  return [...new Set([...tokenizer.eosTokenIds, ...fromModel, ...stops])];
}

/** The sampling settings of a run (the kernel's generation keys) with a token budget. */
export function rolloutSettings(config: ResolvedConfig, maxNewTokens: number, eosTokenIds: readonly number[], logitScale: number): RolloutSettings {
  const greedy = config.do_sample === false;
  return {
    maxNewTokens,
    temperature: greedy ? 0 : num(config, 'temperature', 0.95),
    topP: num(config, 'top_p', 0.7),
    topK: num(config, 'top_k', 50),
    repetitionPenalty: num(config, 'repetition_penalty', 1),
    eosTokenIds,
    logitScale,
  };
}

/**
 * The reference model's scorer: without `ref_model`, a LoRA policy's reference is the same model with its adapters
 * disabled; otherwise a frozen model (`ref_model` with `ref_model_adapters`, or a copy of the base).
 */
export async function referenceScorer(config: ResolvedConfig, policy: CausalLM, tuner: Tuner, session: SessionOptions, logitScale: number, log: (line: string) => void): Promise<RowScorer> {
  const frozen = frozenReferenceModel(config, tuner, log);
  if (!frozen) {
    log('Reference model: the policy with its adapters disabled.');
    return RowScorer.create(policy, { session, disableAdapters: true, logps: { logitScale } });
  }
  log(`Reference model: ${frozen.description}.`);
  return RowScorer.create(frozen.model, { session, logps: { logitScale } });
}

/** Sets up what every RL stage shares: tokenizer, template, prompts, policy and tuner, optimizer, backend, sampler. */
async function setUp(run: DependencyContainer, config: ResolvedConfig, log: (line: string) => void) {
  const args = trainingArgumentsFrom(config);
  const encoder = loadEncoder(run, config, log);
  const { trainDataset, evalDataset } = await prepareTrainingData<UnsupervisedExample>(run, config, encoder, log);
  const { model, modelDir, tuner } = setUpModel(run, config, log, encoder.tokenizer);
  const machinery = trainingMachinery(run, config);
  const session = machinery.sessionOptions ?? {};
  const padTokenId = encoder.tokenizer.padTokenId ?? encoder.tokenizer.eosTokenId ?? 0;
  const eosTokenIds = endIds(encoder.tokenizer, encoder.template, model);
  return { args, encoder, trainDataset, evalDataset, model, modelDir, tuner, machinery, session, padTokenId, eosTokenIds };
}

type Setup = Awaited<ReturnType<typeof setUp>>;

function loopOf(setup: Setup, algorithm: RlAlgorithm, log: (line: string) => void): RolloutLoop {
  return new RolloutLoop({
    model: setup.model,
    modelDir: setup.modelDir,
    tuner: setup.tuner,
    tokenizer: setup.encoder.tokenizer,
    args: setup.args,
    algorithm,
    prompts: setup.trainDataset,
    evalPrompts: setup.evalDataset,
    optimizers: setup.machinery.optimizers,
    callbacks: setup.machinery.callbacks,
    sessionOptions: setup.session,
    log,
  });
}

/** The reward functions of `reward_funcs` with their `reward_weights`. */
function selectRewards(run: DependencyContainer, config: ResolvedConfig): SelectedReward[] {
  const ids = listOf(config.reward_funcs);
  if (!ids.length) throw new TunekitError('stage grpo needs at least one reward function: set reward_funcs (e.g. [accuracy]).');
  const weights = (config.reward_weights as number[] | undefined) ?? ids.map(() => 1);
  return ids.map((id, i) => ({ id, fn: resolveContribution(run, REWARD_FUNCTION, id), weight: weights[i] }));
}

/**
 * grpo (ms-swift's rlhf_type grpo, TRL's GRPOTrainer): per optimizer step, gradient_accumulation_steps micro-batches
 * of per_device_train_batch_size completions, num_generations per prompt, scored by reward_funcs; the reference model
 * only when beta != 0.
 */
export class GrpoRecipe implements Stage {
  constructor(private readonly container: DependencyContainer) {}

  async run(context: StageContext): Promise<void> {
    const { config, log } = context;
    const run = this.container;
    const rewards = selectRewards(run, config);
    const setup = await setUp(run, config, log);
    const generations = num(config, 'num_generations', RL_DEFAULTS.num_generations);
    const beta = num(config, 'beta', RL_DEFAULTS.beta);
    const rollout = rolloutSettings(config, num(config, 'max_completion_length', RL_DEFAULTS.max_completion_length), setup.eosTokenIds, 1);
    // TRL divides the logits by the sampling temperature wherever it takes GRPO's log-probs.
    const settings = { ...rollout, logitScale: rollout.temperature > 0 ? rollout.temperature : 1 };
    const sampler = await PolicySampler.create(setup.model, { session: setup.session, padTokenId: setup.padTokenId });
    const reference = beta !== 0 ? await referenceScorer(config, setup.model, setup.tuner, setup.session, settings.logitScale, log) : undefined;
    log(`grpo: ${generations} completions per prompt, reward functions ${rewards.map((r) => `${r.id} (weight ${r.weight})`).join(', ')}, beta ${beta}${beta === 0 ? ' (no reference model)' : ''}.`);
    const algorithm = new GrpoAlgorithm(
      {
        numGenerations: generations,
        numIterations: num(config, 'num_iterations', RL_DEFAULTS.num_iterations),
        epsilon: num(config, 'epsilon', RL_DEFAULTS.epsilon),
        epsilonHigh: typeof config.epsilon_high === 'number' ? config.epsilon_high : undefined,
        beta,
        lossType: (config.loss_type as GrpoLossType | undefined) ?? 'grpo',
        gradientAccumulationSteps: setup.args.gradientAccumulationSteps,
        completionsPerMicroBatch: setup.args.perDeviceTrainBatchSize,
        rollout: settings,
        padTokenId: setup.padTokenId,
        seed: setup.args.seed,
      },
      sampler,
      reference,
      rewards,
      setup.encoder.tokenizer,
    );
    try {
      await trainAndEvaluate(loopOf(setup, algorithm, log), config, setup.args, log);
    } finally {
      await algorithm.release();
    }
  }
}

/**
 * ppo (LLaMA-Factory's stage ppo on TRL's PPOTrainer): the policy with a value head (value_head.safetensors of the
 * last adapter or the model folder when there is one, else a fresh head), the reference (adapters disabled, or a
 * frozen model), the reward model of reward_model_type, and PpoAlgorithm's buffer of rollouts per step.
 */
export class PpoRecipe implements Stage {
  constructor(private readonly container: DependencyContainer) {}

  async run(context: StageContext): Promise<void> {
    const { config, log } = context;
    const run = this.container;
    const setup = await setUp(run, config, log);
    const { model, modelDir, session } = setup;
    const headDir = listOf(config.adapter_name_or_path).at(-1) ?? modelDir;
    const saved = ValueHead.load(headDir, model.config.hiddenSize);
    const head = saved ?? ValueHead.init(model.config.hiddenSize, setup.args.seed);
    log(saved ? `Value head loaded from ${headDir}.` : 'Value head initialized (v_head.summary: Linear(hidden_size, 1)).');
    const rollout = rolloutSettings(config, num(config, 'max_new_tokens', 1024), setup.eosTokenIds, 1);
    if (!(rollout.maxNewTokens > 0)) throw new TunekitError(`stage ppo samples completions of at most max_new_tokens tokens; set max_new_tokens > 0 (got ${rollout.maxNewTokens}).`);
    const rewardModel = await setUpRewardModel(config, model, session, log);
    const sampler = await PolicySampler.create(model, { session, padTokenId: setup.padTokenId });
    const reference = await referenceScorer(config, model, setup.tuner, session, 1, log);
    const critic = await RowScorer.create(model, { session, head: { valueHead: head, values: true } });
    const algorithm = new PpoAlgorithm(
      {
        miniBatchSize: setup.args.perDeviceTrainBatchSize,
        gradientAccumulationSteps: setup.args.gradientAccumulationSteps,
        bufferSize: num(config, 'ppo_buffer_size', RL_DEFAULTS.ppo_buffer_size),
        ppoEpochs: num(config, 'ppo_epochs', RL_DEFAULTS.ppo_epochs),
        cliprange: num(config, 'cliprange', RL_DEFAULTS.cliprange),
        cliprangeValue: num(config, 'cliprange_value', RL_DEFAULTS.cliprange_value),
        vfCoef: num(config, 'vf_coef', RL_DEFAULTS.vf_coef),
        gamma: num(config, 'gamma', RL_DEFAULTS.gamma),
        lam: num(config, 'lam', RL_DEFAULTS.lam),
        whitenRewards: config.ppo_whiten_rewards === true,
        scoreNorm: config.ppo_score_norm === true,
        klCoef: num(config, 'kl_coef', RL_DEFAULTS.kl_coef),
        target: num(config, 'ppo_target', RL_DEFAULTS.ppo_target),
        horizon: 10000,
        rollout,
        padTokenId: setup.padTokenId,
        seed: setup.args.seed,
      },
      head,
      sampler,
      reference,
      critic,
      rewardModel,
      setup.encoder.tokenizer,
    );
    log(`ppo: ${algorithm.promptsPerStep} prompts per step, ${num(config, 'ppo_epochs', RL_DEFAULTS.ppo_epochs)} epochs over each buffer; reward model: ${rewardModel.description}.`);
    try {
      await trainAndEvaluate(loopOf(setup, algorithm, log), config, setup.args, log);
    } finally {
      await algorithm.release();
    }
  }
}
