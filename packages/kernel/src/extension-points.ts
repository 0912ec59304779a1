/**
 * The extension points of tunekit. Each is an interface plus an `ExtensionPoint` descriptor; plugins contribute
 * implementations under string ids (the ids users write in YAML: `lora`, `cosine`, `llama3`, `cpu`) and a run resolves
 * them by id. The interfaces name only kernel-level types so that a plugin can be written against this package alone;
 * the compute packages narrow the `unknown` graph handles to their own types.
 */

/** Describes one extension point; `T` is what a contribution builds when a run selects it. */
export interface ExtensionPoint<T> {
  /** Short machine name used in tokens, messages and `tunekit plugins`. */
  readonly name: string;
  /** What a user would call it: "tuner", "learning-rate scheduler". */
  readonly title: string;
  /** Phantom field carrying `T`; never set. */
  readonly __contribution?: T;
}

function point<T>(name: string, title: string): ExtensionPoint<T> {
  return Object.freeze({ name, title });
}

// ---------------------------------------------------------------------------------------------------------------
// Shared vocabulary

/** The values of the composed configuration, after validation and defaults. */
export type ResolvedConfig = Readonly<Record<string, unknown>>;

/** A named tensor of the model as a tuner sees it (Hugging Face parameter names). */
export interface ParameterInfo {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: string;
}

// ---------------------------------------------------------------------------------------------------------------
// Stage (recipe): `stage: sft` selects the recipe that runs the whole job.

export interface StageContext {
  readonly config: ResolvedConfig;
  /** Where progress lines go; recipes never write to stdout directly. */
  readonly log: (line: string) => void;
}

export interface Stage {
  /** Runs the job end to end (setup, loop, save); resolves when the outputs are written. */
  run(context: StageContext): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------------
// Tuner: decides what trains. `finetuning_type: lora` selects the `lora` tuner.

/** What a tuner may do to a model: choose trainable base parameters and wrap linear layers by module name. */
export interface TunableModel<TLinearWrapper = unknown> {
  parameters(): readonly ParameterInfo[];
  /** Hugging Face module names of the linear layers, e.g. `model.layers.3.self_attn.q_proj`. */
  linearModules(): readonly string[];
  setTrainable(parameterName: string, trainable: boolean): void;
  wrapLinear(moduleName: string, wrapper: TLinearWrapper): void;
}

export interface Tuner<TLinearWrapper = unknown> {
  /** True when the tuner adds parameters of its own (adapters) instead of training base weights. */
  readonly addsAdapters: boolean;
  apply(model: TunableModel<TLinearWrapper>): void;
  /** Factor on the scheduled learning rate for one trainable parameter (LoRA+ trains B faster); default 1. */
  lrScale?(parameterName: string): number;
  /**
   * Tuners that add adapters write them in their interchange format (PEFT for LoRA) from the trained values, keyed
   * by the names `TunableModel` gave them. Tuners that train base weights leave saving to the trainer.
   */
  saveAdapter?(dir: string, trained: ReadonlyMap<string, Float32Array>): void;
}

// ---------------------------------------------------------------------------------------------------------------
// Optimizer: `optim: adamw_torch`. Updates are graph code, so the graph and tensor types stay opaque here
// (@tunekit/graph instantiates them with its Graph and Tensor).

/** What the optimizer sees of one parameter at one step; lr and step are scalar graph inputs fed each step. */
export interface OptimizerUpdate<TTensor = unknown> {
  readonly param: TTensor;
  readonly grad: TTensor;
  /**
   * The optimizer state of this parameter, in the order of `stateNames`; a name `stateShape` gives no shape for this
   * parameter has no tensor here (undefined).
   */
  readonly state: readonly TTensor[];
  readonly lr: TTensor;
  /** 1-based count of optimizer steps including this one. */
  readonly step: TTensor;
  readonly weightDecay: number;
}

/** A trainable tensor as an optimizer's host-side hooks see it. */
export interface OptimizerParameter {
  readonly name: string;
  readonly shape: readonly number[];
}

/** What `Optimizer.beforeStep` gets: the step about to run, its gradients, and the state it may replace. */
export interface OptimizerStepContext {
  /** 1-based number of the optimizer step about to run (counted from the start of the run). */
  readonly step: number;
  readonly parameters: readonly OptimizerParameter[];
  /** The step's accumulated gradients by parameter name, before clipping. */
  readonly grads: ReadonlyMap<string, Float32Array>;
  /** The optimizer state by `<parameter>.<state name>`; the hook may replace entries (same shapes). */
  readonly state: Map<string, Float32Array>;
}

/** Block-coordinate training (BAdam): the parameters that train during a step and hold optimizer state. */
export interface ParameterBlock {
  /** What logs call the block, e.g. `model.layers.3.`. */
  readonly label: string;
  /** The parameters that train (a subset of those the tuner made trainable). */
  readonly names: readonly string[];
  /** The first optimizer step (1-based) of this activation; the block's optimizer state and step count start there. */
  readonly since: number;
}

export interface Optimizer<TGraph = unknown, TTensor = unknown> {
  /** Names of the per-parameter state tensors, as torch names them in its state dict (exp_avg, exp_avg_sq, ...). */
  readonly stateNames: readonly string[];
  /**
   * The shape of one state tensor of a parameter, or undefined when the parameter keeps no such state (Adafactor keeps
   * row and column statistics for matrices, a full tensor for vectors; GaLore low-rank moments for the matrices it
   * projects). Default: every state has the parameter's shape.
   */
  stateShape?(name: string, parameterShape: readonly number[], parameterName?: string): readonly number[] | undefined;
  /** Appends the update of one parameter to `graph`; returns the new parameter and state. */
  update(graph: TGraph, update: OptimizerUpdate<TTensor>): { param: TTensor; state: TTensor[] };
  /**
   * False when the optimizer steps each parameter as soon as its gradient is ready (LLaMA-Factory's layer-wise GaLore),
   * so no global gradient norm exists and max_grad_norm does not apply. Default true.
   */
  readonly gradientClipping?: boolean;
  /**
   * Host-side work before each update, given the step's gradients: GaLore recomputes its projections from their SVD
   * every update interval. Runs before the update graph; state it replaces is what the graph reads.
   */
  beforeStep?(context: OptimizerStepContext): void | Promise<void>;
  /**
   * Block-coordinate optimizers: the block that trains during `step` (1-based), chosen among the parameters the tuner
   * made trainable. The trainer freezes the others (their last values become base weights), rebuilds its programs when
   * the block changes, and starts the new block's state and step count from zero at `since`.
   */
  activeBlock?(step: number, trainable: readonly OptimizerParameter[]): ParameterBlock;
  /** A line for the log when a block becomes active (BAdam's badam_verbose), or undefined for none. */
  describeBlock?(block: ParameterBlock): string | undefined;
  /** Frees what the host-side hooks opened (GaLore's SVD sessions); the trainer calls it when training ends. */
  release?(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------------
// Learning-rate scheduler: `lr_scheduler_type: cosine`.

export interface LrScheduleSettings {
  /** Optimizer steps in the whole run. */
  readonly totalSteps: number;
  readonly warmupSteps: number;
  /** The optimizer's base learning rate (`learning_rate`); schedules that decay to an absolute rate need it. */
  readonly baseLr: number;
  /** `lr_scheduler_kwargs` from the config. */
  readonly kwargs: Readonly<Record<string, unknown>>;
}

export interface LrScheduler {
  /** The factor on the base learning rate after `step` optimizer steps (Hugging Face's LambdaLR convention). */
  multiplier(step: number): number;
}

export interface LrSchedulerFactory {
  create(settings: LrScheduleSettings): LrScheduler;
}

// ---------------------------------------------------------------------------------------------------------------
// Loss: `pref_loss: sigmoid`, the causal-LM loss, KTO, PPO. A loss declares what it needs; recipes read these
// properties and never branch on a loss's id.

/**
 * The named tensors a recipe can hand a loss, by the name a loss lists in `LossRequirements.inputs`. Shapes use `n` for
 * the examples (pairs) of the batch and `T` for the sequence length. A recipe computes only what the selected loss
 * lists, and fails with the loss's and the input's names when it cannot provide one; a loss may read names outside this
 * table if the recipes it targets provide them.
 *
 * Paired batches (`rm`, `dpo`) hold 2n rows: rows 0..n-1 are the chosen responses and rows n..2n-1 the rejected ones to
 * the same prompts in the same order. Unpaired batches (`kto`) hold n tagged rows plus n KL rows (each prompt with
 * another example's response).
 */
export const LOSS_INPUTS: Readonly<Record<string, string>> = {
  policy_chosen_logps: '[n] label log-probs of each chosen response under the policy, reduced per `sequenceLogps`',
  policy_rejected_logps: '[n] the same for the rejected responses',
  reference_chosen_logps: '[n] label log-probs of each chosen response under the reference model (a constant)',
  reference_rejected_logps: '[n] the same for the rejected responses',
  chosen_lengths: '[n] counted (label) tokens of each chosen response, float',
  rejected_lengths: '[n] counted tokens of each rejected response, float',
  policy_token_logps: '[2n, T] per-token label log-probs of the policy, 0 where not counted (token t predicts label t+1)',
  token_mask: '[2n, T] 1 where a label is counted, else 0, float (aligned with policy_token_logps)',
  policy_chosen_logits_mean: '[] mean of the policy logits over the chosen rows (every position and vocabulary entry)',
  policy_rejected_logits_mean: '[] the same over the rejected rows',
  chosen_scores: '[n] reward-model scores of the chosen responses (value head at the last counted token)',
  rejected_scores: '[n] reward-model scores of the rejected responses',
  policy_logps: '[n] unpaired batches: label log-probs of each response under the policy, reduced per `sequenceLogps`',
  reference_logps: '[n] unpaired batches: the same under the reference model (a constant)',
  lengths: '[n] unpaired batches: counted tokens of each response, float',
  kto_tags: '[n] unpaired batches: 1 (or true) for a desirable response, 0 (or false) for an undesirable one',
  policy_kl_logps: '[m] unpaired batches: label log-probs of the KL rows (mismatched prompt/response) under the policy',
  reference_kl_logps: '[m] the same under the reference model',
};

export interface LossRequirements {
  /** Needs log-probs of a reference model (torchtune's `not is_reference_free`). */
  readonly needsReference: boolean;
  /** How per-token log-probs are reduced per sequence in the `*_logps` inputs. */
  readonly sequenceLogps: 'none' | 'sum' | 'mean';
  /** The named tensors the loss reads (see `LOSS_INPUTS`); the recipe must provide each. */
  readonly inputs: readonly string[];
  /** Tensors read only for metrics: the recipe provides those it can, and the loss logs what it gets. */
  readonly optionalInputs?: readonly string[];
}

export interface LossOutputs<TTensor = unknown> {
  /** The scalar to minimise. */
  readonly loss: TTensor;
  /** Scalars to log, by the names Hugging Face's trainers log them under (`rewards/chosen`, `kl`, ...). */
  readonly metrics: Record<string, TTensor>;
  /** Per-example values (`losses`, `chosen_rewards`, ...) for evaluation outputs and tests. */
  readonly perExample?: Record<string, TTensor>;
}

export interface Loss<TGraph = unknown, TTensor = unknown> {
  readonly requirements: LossRequirements;
  /** Appends the loss to `graph`, reading the inputs its requirements list; returns the loss and what to log. */
  build(graph: TGraph, inputs: Readonly<Record<string, TTensor>>): LossOutputs<TTensor>;
}

// ---------------------------------------------------------------------------------------------------------------
// Template: `template: llama3`. Turns a conversation into token ids with a loss mask (LLaMA-Factory's Template).

/**
 * One message of a conversation, in LLaMA-Factory's roles: `function` is an assistant's tool call (its content the
 * call as JSON), `observation` the tool's result. The system prompt and the tool definitions travel separately.
 */
export interface ChatMessage {
  readonly role: 'user' | 'assistant' | 'observation' | 'function';
  readonly content: string;
}

/** What templates and the data pipeline need of a tokenizer. */
export interface TokenizerLike {
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
  /** The id of a token string (special tokens included), or undefined when the vocabulary lacks it. */
  tokenToId(token: string): number | undefined;
  readonly bosToken?: string;
  readonly eosToken?: string;
  readonly padToken?: string;
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;
  readonly padTokenId?: number;
  /** Whether `encode(text, { addSpecialTokens: true })` prepends bos (tokenizer_config's add_bos_token). */
  readonly addBosToken: boolean;
  /** The tokenizer's own Jinja chat template, when tokenizer_config.json has one. */
  readonly chatTemplate?: string;
}

export interface TemplateEncodeOptions {
  /** The system prompt; when undefined the template's default_system (or the `default_system` key) applies. */
  readonly system?: string;
  /** Tool definitions as a JSON string (LLaMA-Factory's `tools` column). */
  readonly tools?: string;
  /** Reasoning templates: whether the model thinks (LLaMA-Factory's `enable_thinking`). */
  readonly enableThinking?: boolean;
}

/** The token ids of one exchange: everything before the answer, and the answer (with its end tokens). */
export interface EncodedTurn {
  readonly promptIds: readonly number[];
  readonly responseIds: readonly number[];
}

export interface Template {
  /** Words besides eos that end generation (LLaMA-Factory's stop_words). */
  readonly stopWords: readonly string[];
  /** LLaMA-Factory's efficient_eos: eos is appended to answers only, not to every formatted turn. */
  readonly efficientEos: boolean;
  /**
   * One pair per exchange: messages alternate (user | observation) then (assistant | function), so their number is
   * even. The system prompt and tools are placed in the first prompt.
   */
  encodeMultiturn(tokenizer: TokenizerLike, messages: readonly ChatMessage[], options?: TemplateEncodeOptions): EncodedTurn[];
  /** All exchanges but the last answer as one prompt, and the last answer as the response (for generation). */
  encodeOneturn(tokenizer: TokenizerLike, messages: readonly ChatMessage[], options?: TemplateEncodeOptions): EncodedTurn;
}

// ---------------------------------------------------------------------------------------------------------------
// Data mixer: `mix_strategy: interleave_under`.

export interface MixSettings {
  /** One probability per source, summing to 1; undefined means round-robin (as in Hugging Face datasets). */
  readonly probabilities?: readonly number[];
  readonly seed: number;
}

export interface DataMixer {
  /**
   * Mixes the sources lazily. Sources must be restartable iterables (arrays, or objects whose `[Symbol.iterator]()`
   * starts over): oversampling strategies read a source again after it runs out.
   */
  mix<T>(sources: readonly Iterable<T>[], settings: MixSettings): Iterable<T>;
}

// ---------------------------------------------------------------------------------------------------------------
// Inference backend: where graphs execute (`cpu`, `cuda`).

export interface BackendProbe {
  readonly usable: boolean;
  /** Why not, and how to fix it, when `usable` is false. */
  readonly reason?: string;
}

export interface InferenceBackend {
  probe(): BackendProbe;
  /** onnxruntime session options for this backend (execution providers, threads, arena settings). */
  sessionOptions(): Readonly<Record<string, unknown>>;
}

// ---------------------------------------------------------------------------------------------------------------
// Training callback: the Hugging Face TrainerCallback events.

export interface TrainingState {
  readonly globalStep: number;
  readonly maxSteps: number;
  readonly epoch: number;
}

export interface TrainingCallback {
  onTrainBegin?(state: TrainingState): void | Promise<void>;
  onStepEnd?(state: TrainingState): void | Promise<void>;
  onLog?(state: TrainingState, logs: Readonly<Record<string, number>>): void | Promise<void>;
  onEvaluate?(state: TrainingState, metrics: Readonly<Record<string, number>>): void | Promise<void>;
  onSave?(state: TrainingState, checkpointDir: string): void | Promise<void>;
  onTrainEnd?(state: TrainingState): void | Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------------
// Reward function: `reward_funcs: [accuracy, format]` (online RL, ms-swift's names). Scores sampled completions by
// rules or by calling out; the stage sums them with `reward_weights`.

/** What a reward function sees of a batch of sampled completions; every array has one entry per completion. */
export interface RewardInput {
  /** The completions as text (special tokens skipped). */
  readonly completions: readonly string[];
  /** The prompt each completion answers, as text (the chat template applied). */
  readonly prompts: readonly string[];
  /** The dataset's reference answer of the prompt (its response column), when the dataset has one. */
  readonly solutions: readonly (string | undefined)[];
  /** The completions' token ids (the ending eos included when one ended it). */
  readonly completionIds: readonly (readonly number[])[];
}

export interface RewardFunction {
  /** One reward per completion; NaN means "not scored": left out of this function's mean and counted as 0 in the sum. */
  score(input: RewardInput): readonly number[] | Promise<readonly number[]>;
}

// ---------------------------------------------------------------------------------------------------------------

export const STAGE = point<Stage>('stage', 'training stage');
export const TUNER = point<Tuner>('tuner', 'tuner');
export const OPTIMIZER = point<Optimizer>('optimizer', 'optimizer');
export const LR_SCHEDULER = point<LrSchedulerFactory>('lr-scheduler', 'learning-rate scheduler');
export const LOSS = point<Loss>('loss', 'loss');
export const TEMPLATE = point<Template>('template', 'chat template');
export const DATA_MIXER = point<DataMixer>('data-mixer', 'data mixer');
export const INFERENCE_BACKEND = point<InferenceBackend>('backend', 'inference backend');
export const TRAINING_CALLBACK = point<TrainingCallback>('callback', 'training callback');
export const REWARD_FUNCTION = point<RewardFunction>('reward-function', 'reward function');

/** Every extension point the kernel defines, in the order `tunekit plugins` lists them. */
export const EXTENSION_POINTS: readonly ExtensionPoint<unknown>[] = [
  STAGE,
  TUNER,
  OPTIMIZER,
  LR_SCHEDULER,
  LOSS,
  TEMPLATE,
  DATA_MIXER,
  INFERENCE_BACKEND,
  TRAINING_CALLBACK,
  REWARD_FUNCTION,
];
