import type { GraphOptimizer } from '@tunekit/graph';
import {
  contribute,
  OPTIMIZER,
  resolveContribution,
  resolveToken,
  RUN_CONFIG,
  TunekitError,
  z,
  type ConfigIssue,
  type DependencyContainer,
  type OptionGroup,
  type ParameterBlock,
  type ResolvedConfig,
} from '@tunekit/kernel';
import { activeLayerBlock, BlockSchedule, SWITCH_MODES, type BlockScheduleSettings } from './blocks';
import { ratioOptimizer } from './ratio';

export * from './blocks';
export * from './ratio';

export const name = '@tunekit/plugin-badam';

/** LLaMA-Factory's rules for use_badam, and what tunekit does not build. */
export function checkBadam(config: ResolvedConfig, report: (issue: ConfigIssue) => void): void {
  if (config.use_badam !== true) return;
  const tuning = String(config.finetuning_type ?? 'lora');
  if (tuning !== 'full') {
    report({ key: 'use_badam', message: `use_badam trains full parameters block by block but finetuning_type is ${tuning}: set finetuning_type: full.` });
  }
  if (config.quantization_bit !== undefined && config.quantization_bit !== null) {
    report({ key: 'use_badam', message: 'use_badam trains base weights, which a quantized base (quantization_bit) keeps frozen: remove one of them.' });
  }
}

export const options: OptionGroup[] = [
  {
    group: 'badam',
    shape: {
      use_badam: z.boolean().default(false).describe('train full parameters with BAdam: one decoder layer at a time trains and holds Adam state (needs finetuning_type: full)'),
      badam_mode: z.enum(['layer', 'ratio']).default('layer').describe('layer: one decoder layer at a time trains; ratio: every weight but the embeddings and lm_head trains a masked fraction of its entries'),
      badam_start_block: z.number().int().min(0).nullable().optional().describe('index of the first block to train (default: 0, or the last one for descending)'),
      badam_switch_mode: z.enum(SWITCH_MODES).default('ascending').describe('order of the blocks: ascending, descending, random (reshuffled each round), fixed'),
      badam_switch_interval: z
        .number()
        .int()
        .refine((v) => v === -1 || v >= 1, { message: 'badam_switch_interval is a positive number of steps, or -1 to never switch' })
        .default(50)
        .describe('optimizer steps between block switches (-1: never switch)'),
      badam_update_ratio: z.number().gt(1e-6).max(1).default(0.05).describe('ratio mode: fraction of each weight updated during a switch interval'),
      badam_mask_mode: z.enum(['adjacent', 'scatter']).default('adjacent').describe('ratio mode: adjacent entries from a moving offset, or scattered ones (a seeded permutation)'),
      badam_verbose: z.number().int().min(0).max(2).default(0).describe('0: quiet; 1: log each block as it becomes active; 2: also its parameter names'),
    },
    check: checkBadam,
  },
];

export function blockScheduleSettings(config: ResolvedConfig): BlockScheduleSettings {
  const start = config.badam_start_block;
  return {
    switchMode: (config.badam_switch_mode ?? 'ascending') as BlockScheduleSettings['switchMode'],
    switchInterval: Number(config.badam_switch_interval ?? 50),
    startBlock: typeof start === 'number' ? start : undefined,
    seed: Number(config.seed ?? 42),
  };
}

/** BAdam's log line for a block that becomes active (badam_verbose 1), with its tensors at badam_verbose 2. */
function describe(block: ParameterBlock, verbose: number): string | undefined {
  if (verbose < 1) return undefined;
  const head = block.label.startsWith('ratio')
    ? `BAdam: from step ${block.since}, ${block.names.length} tensors update a masked fraction of their entries (${block.label}).`
    : `BAdam: from step ${block.since}, parameters with the prefix ${block.label} are trainable (${block.names.length} tensors).`;
  return verbose >= 2 ? [head, ...block.names.map((n) => `  ${n}`)].join('\n') : head;
}

/**
 * BAdam's BlockOptimizer around any optimizer: the base optimizer's update and state, for the active block only. The
 * trainer asks `activeBlock` each step, freezes the other layers, and restarts the state (and Adam's step count) when
 * a block becomes active.
 */
export function blockOptimizer(base: GraphOptimizer, settings: BlockScheduleSettings, verbose = 0): GraphOptimizer {
  let schedule: BlockSchedule | undefined;
  const scheduleFor = (count: number) => {
    if (!schedule || schedule.blockCount !== count) {
      try {
        schedule = new BlockSchedule(count, settings);
      } catch (error) {
        throw new TunekitError((error as Error).message);
      }
    }
    return schedule;
  };
  return {
    ...base,
    activeBlock: (step, trainable) => {
      try {
        return activeLayerBlock(scheduleFor, step, trainable);
      } catch (error) {
        if (error instanceof TunekitError) throw error;
        throw new TunekitError((error as Error).message);
      }
    },
    describeBlock: (block: ParameterBlock) => describe(block, verbose),
  };
}

/** Contributes the `badam` optimizer, engaged by use_badam: true in place of `optim`, which it wraps. */
export function register(container: DependencyContainer): void {
  contribute(container, OPTIMIZER, {
    engagedBy: (config) => config.use_badam === true,
    id: 'badam',
    description: 'BAdam: block coordinate descent with the optim optimizer, one decoder layer at a time (use_badam)',
    provider: {
      useFactory: (run) => {
        const config = resolveToken(run, RUN_CONFIG);
        const verbose = Number(config.badam_verbose ?? 0);
        if (config.badam_mode === 'ratio') {
          // BlockOptimizerRatio runs its own sparse Adam (with the Trainer's betas and epsilon) whatever optim says.
          const ratio = ratioOptimizer({
            ratio: Number(config.badam_update_ratio ?? 0.05),
            maskMode: config.badam_mask_mode === 'scatter' ? 'scatter' : 'adjacent',
            switchInterval: Number(config.badam_switch_interval ?? 50),
            seed: Number(config.seed ?? 42),
            betas: [Number(config.adam_beta1 ?? 0.9), Number(config.adam_beta2 ?? 0.999)],
            eps: Number(config.adam_epsilon ?? 1e-8),
          });
          return { ...ratio, describeBlock: (block: ParameterBlock) => describe(block, verbose) };
        }
        const base = resolveContribution(run, OPTIMIZER, String(config.optim)) as GraphOptimizer;
        return blockOptimizer(base, blockScheduleSettings(config), verbose);
      },
    },
  });
}
