import * as path from 'node:path';
import type { Batch, CollateOptions, FeedbackExample, PairwiseExample } from '@tunekit/data';
import { listOf, LOSS, resolveContribution, TunekitError, type DependencyContainer, type ResolvedConfig, type Stage, type StageContext, type Tuner } from '@tunekit/kernel';
import { CausalLM, LoraAdapter } from '@tunekit/models';
import {
  loadEncoder,
  prepareTrainingData,
  saveMetrics,
  setUpModel,
  speedMetrics,
  toPythonJson,
  Trainer,
  trainAndEvaluate,
  trainingArgumentsFrom,
  trainingMachinery,
  writeFileAtomic,
  type TrainingObjective,
} from '@tunekit/trainer';
import type { SessionOptions } from '@tunekit/graph';
import type { PreferenceLoss } from '../contributions';
import { preferenceLossId } from '../options';
import { collateFeedback, collatePairs, feedbackLength, pairLength } from './batches';
import { ktoObjective, pairedPreferenceObjective, rewardModelObjective, type SelectedLoss } from './objectives';
import { adapterFreeReference, FrozenReference, type ReferenceModel } from './reference';
import { ValueHead } from './value-head';

/** The loss a preference stage trains with: `pref_loss` for dpo, `kto` for kto, `pairwise` for rm. */
function selectLoss(run: DependencyContainer, config: ResolvedConfig): SelectedLoss {
  const id = preferenceLossId(config);
  if (!id) throw new TunekitError(`Stage ${String(config.stage)} has no preference loss.`, 1);
  return { id, loss: resolveContribution(run, LOSS, id) as PreferenceLoss };
}

function collateOptions(config: ResolvedConfig, tokenizer: { padTokenId?: number; eosTokenId?: number }): CollateOptions {
  return { padTokenId: tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0, ignorePadTokenForLoss: config.ignore_pad_token_for_loss !== false };
}

/**
 * The frozen reference model LLaMA-Factory sets up, or undefined when a LoRA policy serves as its own reference with
 * its adapters disabled (no `ref_model`): `ref_model` with `ref_model_adapters` applied, or a copy of the base model.
 * Preference and RL stages score it in a session of its own.
 */
export function frozenReferenceModel(config: ResolvedConfig, tuner: Tuner, log: (line: string) => void): { model: CausalLM; description: string } | undefined {
  const refModel = typeof config.ref_model === 'string' ? config.ref_model : undefined;
  if (refModel === undefined && tuner.addsAdapters) return undefined;
  const dir = refModel ?? String(config.model_name_or_path);
  const model = CausalLM.load(dir, { log });
  const adapters = listOf(config.ref_model_adapters);
  for (const adapter of adapters) LoraAdapter.load(adapter, model).apply(model, { trainable: false });
  const description = refModel ? `ref_model ${refModel}${adapters.length ? ` with the adapters ${adapters.join(', ')}` : ''}` : `a frozen copy of ${dir}`;
  return { model, description: `${description}, in a session of its own` };
}

/** The reference model of a preference stage: the frozen one, or the policy with its adapters disabled. */
async function setUpReference(config: ResolvedConfig, policy: CausalLM, tuner: Tuner, session: SessionOptions, log: (line: string) => void): Promise<ReferenceModel> {
  const frozen = frozenReferenceModel(config, tuner, log);
  if (!frozen) return adapterFreeReference(policy);
  return FrozenReference.create(frozen.model, { session, description: frozen.description });
}

/** How a preference stage lays out its batches and which objective reads them. */
export interface PreferenceLayout<E> {
  readonly stage: string;
  collate(examples: readonly E[], options: CollateOptions): Batch;
  /** An example's length for group_by_length. */
  length(example: E): number;
  objective(selected: SelectedLoss, reference: ReferenceModel | undefined): TrainingObjective;
}

/** dpo: 2n rows, the chosen responses then the rejected ones. */
export const DPO_LAYOUT: PreferenceLayout<PairwiseExample> = { stage: 'dpo', collate: collatePairs, length: pairLength, objective: pairedPreferenceObjective };
/** kto: 2n rows, the tagged examples then their KL rows. */
export const KTO_LAYOUT: PreferenceLayout<FeedbackExample> = { stage: 'kto', collate: collateFeedback, length: feedbackLength, objective: ktoObjective };

/**
 * The dpo and kto recipes: set up (tokenizer, template, data, policy and tuner, the loss and, when it needs one,
 * the reference model), train, evaluate, save. What differs between the two is the batch layout (pairs, or tagged
 * examples with their KL rows) and so the log-probs the loss reads.
 */
export class PreferenceRecipe<E extends object> implements Stage {
  constructor(
    private readonly layout: PreferenceLayout<E>,
    private readonly container: DependencyContainer,
  ) {}

  async run(context: StageContext): Promise<void> {
    const { config, log } = context;
    const run = this.container;
    const args = trainingArgumentsFrom(config);
    const selected = selectLoss(run, config);

    // Setup: tokenizer, template, data.
    const encoder = loadEncoder(run, config, log);
    const { trainDataset, evalDataset } = await prepareTrainingData<E>(run, config, encoder, log);

    // Policy, tuner, optimizer, schedule, backend; the reference model only if the loss declares it needs one.
    const { model, modelDir, tuner } = setUpModel(run, config, log, encoder.tokenizer);
    const machinery = trainingMachinery(run, config);
    const reference = selected.loss.requirements.needsReference ? await setUpReference(config, model, tuner, machinery.sessionOptions ?? {}, log) : undefined;
    log(`${this.layout.stage} with the ${selected.id} loss; reference model: ${reference?.description ?? 'none (the loss is reference-free)'}.`);

    const options = collateOptions(config, encoder.tokenizer);
    const trainer = new Trainer<E>({
      model,
      modelDir,
      tuner,
      tokenizer: encoder.tokenizer,
      args,
      objective: this.layout.objective(selected, reference),
      dataCollator: (examples) => this.layout.collate(examples, options),
      exampleLength: (example) => this.layout.length(example),
      trainDataset,
      evalDataset,
      ...machinery,
      log,
    });

    try {
      await trainAndEvaluate(trainer, config, args, log);
    } finally {
      await reference?.release();
    }
  }
}

/**
 * The rm recipe: the model (LoRA or full) with a value head on the last non-pad token of each sequence, trained with
 * the pairwise loss on chosen / rejected pairs; the head is saved beside the adapter or model as LLaMA-Factory does.
 */
export class RewardModelRecipe implements Stage {
  constructor(private readonly container: DependencyContainer) {}

  async run(context: StageContext): Promise<void> {
    const { config, log } = context;
    const run = this.container;
    const args = trainingArgumentsFrom(config);
    const selected = selectLoss(run, config);

    // Setup: tokenizer, template, chosen / rejected pairs.
    const encoder = loadEncoder(run, config, log);
    const { trainDataset, evalDataset } = await prepareTrainingData<PairwiseExample>(run, config, encoder, log);

    // Model and tuner; the value head from the last adapter or the model folder if saved there, else a fresh one.
    const { model, modelDir, tuner } = setUpModel(run, config, log, encoder.tokenizer);
    const headDir = listOf(config.adapter_name_or_path).at(-1) ?? modelDir;
    const saved = ValueHead.load(headDir, model.config.hiddenSize);
    const head = saved ?? ValueHead.init(model.config.hiddenSize, Number(config.seed ?? 42));
    log(saved ? `Value head loaded from ${headDir}.` : 'Value head initialized (v_head.summary: Linear(hidden_size, 1)).');

    const options = collateOptions(config, encoder.tokenizer);
    const trainer = new Trainer<PairwiseExample>({
      model,
      modelDir,
      tuner,
      tokenizer: encoder.tokenizer,
      args,
      objective: rewardModelObjective(selected, head),
      dataCollator: (examples) => collatePairs(examples, options),
      exampleLength: pairLength,
      trainDataset,
      evalDataset,
      ...trainingMachinery(run, config),
      log,
    });

    await trainAndEvaluate(trainer, config, args, log, () => predictScores(trainer, evalDataset, args.outputDir, log));
  }
}

/**
 * LLaMA-Factory's do_predict for rm: predict_results.json (predict_loss, predict_accuracy, speed) and
 * generated_predictions.jsonl with the value head's score of each pair, {"chosen": ..., "rejected": ...} rounded
 * to 2 decimals, one line per pair.
 */
async function predictScores(trainer: Trainer<PairwiseExample>, dataset: readonly PairwiseExample[] | undefined, outputDir: string, log: (line: string) => void): Promise<void> {
  if (!dataset?.length) throw new TunekitError('do_predict: the evaluation set is empty; set eval_dataset or val_size.');
  const started = Date.now();
  const { metrics, predictions } = await trainer.predict(dataset, 'predict');
  Object.assign(metrics, speedMetrics('predict', (Date.now() - started) / 1000, { samples: dataset.length }));
  saveMetrics(outputDir, 'predict', metrics);
  const round = (v: number) => Math.round(v * 100) / 100;
  const lines = predictions.chosen.map((chosen, i) => toPythonJson({ chosen: round(chosen), rejected: round(predictions.rejected[i]) }));
  writeFileAtomic(path.join(outputDir, 'generated_predictions.jsonl'), lines.join('\n'));
  log(`predict_loss ${metrics.predict_loss.toFixed(4)}${metrics.predict_accuracy !== undefined ? `, predict_accuracy ${metrics.predict_accuracy.toFixed(4)}` : ''}; wrote ${lines.length} scored pairs to ${path.join(outputDir, 'generated_predictions.jsonl')}.`);
}
