import * as fs from 'node:fs';
import { collate, prepareData, type PretrainExample, type SupervisedExample, type TokenizedSource, type UnsupervisedExample } from '@tunekit/data';
import { predictWithGenerate } from './predict';
import type { GraphOptimizer } from '@tunekit/graph';
import {
  INFERENCE_BACKEND,
  LR_SCHEDULER,
  lrSchedulerKwargs,
  NotBuiltError,
  OPTIMIZER,
  registryOf,
  resolveContribution,
  selectedId,
  TEMPLATE,
  TRAINING_CALLBACK,
  TUNER,
  TunekitError,
  type DependencyContainer,
  type ResolvedConfig,
  type Stage,
  type StageContext,
  type Template,
  type Tuner,
} from '@tunekit/kernel';
import { CausalLM, createRandomModel, quantizationSettings, quantize, readModelConfig, resizeVocabulary } from '@tunekit/models';
import { loadTokenizer, type HfTokenizer } from '@tunekit/tokenizer';
import { saveMetrics } from '../outputs/metrics';
import { trainingArgumentsFrom, type TrainingArguments } from '../train/args';
import { Trainer, type TrainerOptions, type TrainOutput } from '../train/trainer';
import type { Metrics } from '../outputs/metrics';

/** The chat template of a run: `template`, or the tokenizer's own chat template, or `empty`, as LLaMA-Factory picks. */
export function resolveTemplate(run: DependencyContainer, config: ResolvedConfig, tokenizer: HfTokenizer): Template {
  const id = typeof config.template === 'string' ? config.template : tokenizer.chatTemplate ? 'jinja' : 'empty';
  return resolveContribution(run, TEMPLATE, id);
}

/**
 * The model of a run: the pretrained weights, or fresh ones with train_from_scratch; with `tokenizer` grown by
 * new_special_tokens (or resize_vocab), the embeddings grow to fit it as LLaMA-Factory resizes them.
 */
export function loadModel(config: ResolvedConfig, log: (line: string) => void, tokenizer?: HfTokenizer): { model: CausalLM; modelDir: string } {
  const modelDir = String(config.model_name_or_path);
  if (!fs.existsSync(modelDir)) {
    throw new TunekitError(`model_name_or_path: ${modelDir} does not exist. tunekit loads local Hugging Face folders (config.json, *.safetensors, tokenizer.json); create one with \`tunekit init-model\`.`);
  }
  let model = config.train_from_scratch === true
    ? createRandomModel(readModelConfig(modelDir) as never, Number(config.seed ?? 42))
    : CausalLM.load(modelDir, { log });
  if (tokenizer && (config.resize_vocab === true || tokenizer.vocabSize > model.config.vocabSize)) {
    if (config.finetuning_type === 'lora' && tokenizer.vocabSize > model.config.vocabSize) {
      throw new NotBuiltError('Adding tokens with LoRA tuning (it needs the embeddings trained beside the adapter, additional_target)');
    }
    model = resizeVocabulary(model, tokenizer.vocabSize, { seed: Number(config.seed ?? 42), log });
  }
  return { model, modelDir };
}

function toArray<E>(source: TokenizedSource | undefined, what: string): E[] | undefined {
  if (source === undefined) return undefined;
  if (Array.isArray(source)) return source as E[];
  throw new NotBuiltError(`Training on a ${what} stream (streaming: true)`);
}

/** The tokenizer of the model folder (with new_special_tokens added, as LLaMA-Factory does) and the run's template. */
export function loadEncoder(run: DependencyContainer, config: ResolvedConfig, log: (line: string) => void): { tokenizer: HfTokenizer; template: Template } {
  const tokenizer = loadTokenizer(String(config.model_name_or_path), { log });
  const added = config.new_special_tokens;
  if (Array.isArray(added) && added.length) {
    tokenizer.addSpecialTokens(added.map(String));
    log(`Added special tokens: ${added.join(', ')} (vocabulary now ${tokenizer.vocabSize}).`);
  }
  return { tokenizer, template: resolveTemplate(run, config, tokenizer) };
}

/**
 * The run's training and evaluation examples, tokenized for the config's stage (its data stage: dpo reads rm's
 * pairs); streams are refused, and do_train with an empty training set is an error.
 */
export async function prepareTrainingData<E>(
  run: DependencyContainer,
  config: ResolvedConfig,
  encoder: { tokenizer: HfTokenizer; template: Template },
  log: (line: string) => void,
): Promise<{ trainDataset: E[]; evalDataset?: E[] }> {
  const data = await prepareData(config, { encoder, run, log });
  const trainDataset = toArray<E>(data.train, 'training');
  if (config.do_train === true && !trainDataset?.length) throw new TunekitError('do_train is true but the training set is empty: check dataset, max_samples and val_size.');
  return { trainDataset: trainDataset ?? [], evalDataset: toArray<E>(data.eval, 'evaluation') };
}

/**
 * The model with the run's tuner applied and, unless disabled, gradient checkpointing of each decoder layer. With
 * quantization_bit (@tunekit/plugin-quantization) the frozen base is quantized first, so adapters initialise from
 * the weights the graph sees.
 */
export function setUpModel(run: DependencyContainer, config: ResolvedConfig, log: (line: string) => void, tokenizer?: HfTokenizer): { model: CausalLM; modelDir: string; tuner: Tuner } {
  const { model, modelDir } = loadModel(config, log, tokenizer);
  const quantization = quantizationSettings(config.quantization_bit, config.quantization_type);
  if (quantization) quantize(model, { ...quantization, log });
  const tuner = resolveContribution(run, TUNER, String(config.finetuning_type));
  tuner.apply(model);
  if (config.print_param_status === true) {
    // LLaMA-Factory's print_param_status: every base parameter with its dtype, device and whether it trains.
    for (const p of model.parameters()) log(`name: ${p.name}, dtype: ${p.dtype}, device: cpu, trainable: ${model.isTrainable(p.name)}`);
  }
  if (config.disable_gradient_checkpointing !== true) model.setLayerHook((layer) => layer.g.checkpoint(() => layer.build(layer.hidden)));
  return { model, modelDir, tuner };
}

/** The Trainer's optimizer, schedule, callbacks and backend session settings, from the config's contributions. */
export function trainingMachinery(run: DependencyContainer, config: ResolvedConfig): Pick<TrainerOptions<object>, 'optimizers' | 'callbacks' | 'sessionOptions'> {
  // `optim`, unless a plugin's switch engages its own optimizer (use_galore, use_badam).
  const optimizer = resolveContribution(run, OPTIMIZER, selectedId(run, OPTIMIZER, String(config.optim), config)) as GraphOptimizer;
  const scheduler = resolveContribution(run, LR_SCHEDULER, String(config.lr_scheduler_type));
  const backend = resolveContribution(run, INFERENCE_BACKEND, String(config.backend ?? 'cpu')).sessionOptions();
  const callbacks = registryOf(run).ids(TRAINING_CALLBACK).map((id) => resolveContribution(run, TRAINING_CALLBACK, id));
  return {
    optimizers: { optimizer, scheduler, schedulerKwargs: lrSchedulerKwargs(config) },
    callbacks,
    sessionOptions: { backend, disableCse: config.disable_gradient_checkpointing !== true },
  };
}

/**
 * The end of every training recipe: train (do_train), evaluate (do_eval), predict (do_predict, for recipes that can:
 * `predict`); a recipe without prediction says so.
 */
export async function trainAndEvaluate(
  trainer: { train(): Promise<TrainOutput>; evaluate(): Promise<Metrics> },
  config: ResolvedConfig,
  args: TrainingArguments,
  log: (line: string) => void,
  predict?: () => Promise<void>,
): Promise<void> {
  if (config.do_train === true) {
    const result = await trainer.train();
    log(`Training finished at step ${result.globalStep}: train_loss ${result.metrics.train_loss?.toFixed(4)}, ${result.metrics.train_runtime?.toFixed(1)} s.`);
  }
  if (config.do_eval === true) {
    const metrics = await trainer.evaluate();
    saveMetrics(args.outputDir, 'eval', metrics);
    log(
      Object.entries(metrics)
        .filter(([key]) => !/_(runtime|per_second)$/.test(key))
        .map(([key, value]) => `${key} ${value.toFixed(4)}`)
        .join(', '),
    );
  }
  if (config.do_predict === true) {
    if (!predict) throw new NotBuiltError(`Batch prediction (do_predict) for stage ${String(config.stage)}`);
    await predict();
  }
}

/**
 * The pt and sft recipes: one readable script each way — set up (tokenizer, template, data, model, tuner,
 * optimizer, schedule, backend), train, evaluate, save. What differs between the two is only the data stage.
 */
export class CausalLmRecipe implements Stage {
  constructor(
    private readonly stage: 'pt' | 'sft',
    private readonly container: DependencyContainer,
  ) {}

  async run(context: StageContext): Promise<void> {
    const { config, log } = context;
    const run = this.container;
    const args = trainingArgumentsFrom(config);

    // Setup: tokenizer, template, data.
    const encoder = loadEncoder(run, config, log);
    const { trainDataset, evalDataset } = await prepareTrainingData<SupervisedExample | PretrainExample>(run, { ...config, stage: this.stage }, encoder, log);

    // Model, tuner, optimizer, schedule, backend.
    const { model, modelDir, tuner } = setUpModel(run, config, log, encoder.tokenizer);
    const padTokenId = encoder.tokenizer.padTokenId ?? encoder.tokenizer.eosTokenId ?? 0;
    const trainer = new Trainer({
      model,
      modelDir,
      tuner,
      tokenizer: encoder.tokenizer,
      args,
      dataCollator: (examples) => collate(this.stage, examples as never, { padTokenId, ignorePadTokenForLoss: config.ignore_pad_token_for_loss !== false }),
      trainDataset,
      evalDataset,
      ...trainingMachinery(run, config),
      log,
    });

    const predict = () =>
      predictWithGenerate({
        config,
        examples: (evalDataset ?? []) as unknown as UnsupervisedExample[],
        tokenizer: encoder.tokenizer,
        template: encoder.template,
        trained: config.do_train === true,
        backendOptions: resolveContribution(run, INFERENCE_BACKEND, String(config.backend ?? 'cpu')).sessionOptions(),
        log,
      });
    await trainAndEvaluate(trainer, config, args, log, this.stage === 'sft' && config.predict_with_generate === true ? predict : undefined);
  }
}
