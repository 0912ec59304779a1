import type { OptimizerParameter, ParameterBlock } from '@tunekit/kernel';
import { createRng } from '@tunekit/models';

/** LLaMA-Factory's badam_switch_mode values. */
export const SWITCH_MODES = ['ascending', 'descending', 'random', 'fixed'] as const;
export type SwitchMode = (typeof SWITCH_MODES)[number];

export interface BlockScheduleSettings {
  readonly switchMode: SwitchMode;
  /** badam_switch_interval; -1 never switches. */
  readonly switchInterval: number;
  /** badam_start_block; default: 0 (ascending, fixed, random's first pick aside), the last block (descending). */
  readonly startBlock?: number;
  /** The run's seed: random mode's block orders. */
  readonly seed: number;
}

/**
 * BAdam's layer blocks, as its BlockOptimizer infers them: one block per decoder layer (the prefix `….layers.<i>.`),
 * in the order the layers come; the embeddings, the final norm and lm_head belong to no block and stay frozen.
 */
export function layerBlocks(trainable: readonly OptimizerParameter[]): { prefix: string; names: string[] }[] {
  const blocks = new Map<string, string[]>();
  for (const p of trainable) {
    const match = /^(.*?layers\.\d+\.)/.exec(p.name);
    if (!match) continue;
    const names = blocks.get(match[1]) ?? [];
    names.push(p.name);
    blocks.set(match[1], names);
  }
  return [...blocks].map(([prefix, names]) => ({ prefix, names }));
}

/**
 * Which block trains at each optimizer step. BAdam's BlockOptimizer activates its first block before step 1 and
 * switches after every step k with (k + 1) % interval == 0, so the first block trains interval − 1 steps and each
 * later one interval steps; every switch (even to the same block, in fixed mode) starts the optimizer state anew.
 * The n-th switch picks: ascending (start + n) mod B, descending (start − n) mod B, fixed the start block, random
 * the next of a shuffled order of all blocks, reshuffled when used up (seeded by the run's seed; BAdam draws from
 * torch's generator, so the orders differ from a PyTorch run's).
 */
export class BlockSchedule {
  private readonly orders: number[] = [];
  private readonly random;

  constructor(
    readonly blockCount: number,
    private readonly settings: BlockScheduleSettings,
  ) {
    this.random = createRng(settings.seed);
    const start = settings.startBlock;
    if (start !== undefined && (start < 0 || start >= blockCount)) {
      throw new RangeError(`badam_start_block ${start} is out of range: the model has ${blockCount} blocks (0 to ${blockCount - 1}).`);
    }
  }

  /** How many switches happened before optimizer step `step` (1-based). */
  switchesBefore(step: number): number {
    const interval = this.settings.switchInterval;
    if (interval <= 0) return 0;
    return Math.floor(step / interval) - (interval === 1 ? 1 : 0);
  }

  /** The first step of the activation that follows `switches` switches. */
  firstStepAfter(switches: number): number {
    if (switches === 0) return 1;
    return this.settings.switchInterval === 1 ? switches + 1 : switches * this.settings.switchInterval;
  }

  /** The block index of the activation after `switches` switches. */
  blockAfter(switches: number): number {
    const n = this.blockCount;
    const { switchMode, startBlock } = this.settings;
    switch (switchMode) {
      case 'ascending':
        return (((startBlock ?? 0) + switches) % n + n) % n;
      case 'descending':
        return (((startBlock ?? n - 1) - switches) % n + n) % n;
      case 'fixed':
        return startBlock ?? 0;
      case 'random': {
        if (startBlock !== undefined) {
          if (switches === 0) return startBlock;
          switches -= 1;
        }
        while (this.orders.length <= switches) this.orders.push(...this.shuffled());
        return this.orders[switches];
      }
    }
  }

  /** One pass over every block in random order (the order BAdam pops them: from the end of a permutation). */
  private shuffled(): number[] {
    const permutation = Array.from({ length: this.blockCount }, (_, i) => i);
    for (let i = permutation.length - 1; i > 0; i--) {
      const j = Math.floor(this.random.uniform() * (i + 1));
      [permutation[i], permutation[j]] = [permutation[j], permutation[i]];
    }
    return permutation.reverse();
  }

  /** The active block's index and the step its activation began, for optimizer step `step`. */
  at(step: number): { block: number; since: number } {
    const switches = this.switchesBefore(step);
    return { block: this.blockAfter(switches), since: this.firstStepAfter(switches) };
  }
}

/** The kernel's ParameterBlock for a step, from the trainable parameters and a schedule over their layer blocks. */
export function activeLayerBlock(schedule: (count: number) => BlockSchedule, step: number, trainable: readonly OptimizerParameter[]): ParameterBlock {
  const blocks = layerBlocks(trainable);
  if (!blocks.length) throw new RangeError('BAdam found no decoder-layer parameters among the trainable ones (layer mode trains model.layers.<i>. blocks).');
  const { block, since } = schedule(blocks.length).at(step);
  return { label: blocks[block].prefix, names: blocks[block].names, since };
}
