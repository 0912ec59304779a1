/** @tunekit/trainer: the Trainer, the pt and sft recipes, and the run's outputs (logs, plots, checkpoints). */
import { contribute, STAGE, type DependencyContainer, type OptionGroup } from '@tunekit/kernel';
import { CausalLmRecipe } from './recipes/causal-lm';

export * from './outputs/atomic-write';
export * from './outputs/checkpoints';
export * from './outputs/metrics';
export * from './outputs/numbers';
export * from './outputs/output-dir';
export * from './outputs/plot';
export * from './outputs/progress';
export * from './outputs/python-json';
export * from './outputs/rng-state';
export * from './outputs/run-log';
export * from './outputs/similarity';
export { trainingArgumentsFrom, totalOptimizerSteps, stepsOf, type TrainingArguments } from './train/args';
export { BatchSampler, type SamplerOptions } from './train/sampler';
export { EvalProgram, GradProgram, neftuneNoise, UpdateProgram, type ParameterGroupSpec, type ParameterSlot } from './train/programs';
export { causalLmObjective, meanMetrics, type Feeds, type ObjectiveContext, type ObjectiveGraph, type TrainingObjective } from './train/objective';
export { countedTokens, int64, modelFeeds } from './train/feeds';
export { Trainer, type TrainerOptions, type TrainOutput, type TrainExample } from './train/trainer';
export { parameterGroups, TrainingRun, type RunSetup, type TrainingRunOptions, type UpdateOutcome } from './train/run';
export { readCheckpointWeights, saveTrainedModel, writeSafetensorsAtomic } from './train/weights-io';
export {
  CausalLmRecipe,
  loadEncoder,
  loadModel,
  prepareTrainingData,
  resolveTemplate,
  setUpModel,
  trainAndEvaluate,
  trainingMachinery,
} from './recipes/causal-lm';

/** The trainer is also a plugin: it contributes the pt and sft stages. */
export const name = '@tunekit/trainer';

export const options: OptionGroup[] = [];

export function register(container: DependencyContainer): void {
  contribute(container, STAGE, { id: 'pt', description: 'pre-training: next-token prediction on raw text', provider: { useFactory: (run) => new CausalLmRecipe('pt', run) } });
  contribute(container, STAGE, { id: 'sft', description: 'supervised fine-tuning on conversations', provider: { useFactory: (run) => new CausalLmRecipe('sft', run) } });
}
