import { TunekitError, type Optimizer, type OptimizerParameter, type ParameterBlock, type Tuner } from '@tunekit/kernel';
import type { CausalLM } from '@tunekit/models';
import { readCheckpointWeights } from './weights-io';

/**
 * Block-coordinate training (an optimizer with `activeBlock`, BAdam): of the base parameters the tuner made
 * trainable, only the active block is trainable in the programs; the others are frozen base weights. When the block
 * changes, the finished block's trained values become the model's base weights and the trainer rebuilds its programs.
 */
export class BlockTraining {
  /** The parameters the tuner made trainable, the pool blocks are chosen from. */
  private readonly pool: readonly OptimizerParameter[];
  current: ParameterBlock | undefined;

  constructor(
    private readonly model: CausalLM,
    tuner: Tuner,
    private readonly optimizer: Optimizer<unknown, unknown>,
  ) {
    if (tuner.addsAdapters) {
      throw new TunekitError('A block-coordinate optimizer (BAdam) trains base weights: use finetuning_type full (or freeze), not an adapter tuner.');
    }
    this.pool = model.parameters().filter((p) => model.isTrainable(p.name)).map((p) => ({ name: p.name, shape: p.shape }));
    if (!this.pool.length) throw new TunekitError('A block-coordinate optimizer (BAdam) found no trainable parameters: check finetuning_type.');
  }

  /** Parameters in the active block. */
  get trainableSize(): number {
    const names = new Set(this.current?.names ?? []);
    return this.pool.filter((p) => names.has(p.name)).reduce((sum, p) => sum + p.shape.reduce((a, b) => a * b, 1), 0);
  }

  private blockAt(step: number): ParameterBlock {
    const block = this.optimizer.activeBlock!(step, this.pool);
    const known = new Set(this.pool.map((p) => p.name));
    const stray = block.names.find((name) => !known.has(name));
    if (stray) throw new TunekitError(`The block optimizer chose '${stray}', which the tuner did not make trainable.`, 1);
    if (!block.names.length) throw new TunekitError(`The block optimizer's block ${block.label} has no trainable parameters.`, 1);
    return block;
  }

  /**
   * What optimizer step `step` (1-based) starts: `switch` when another set of parameters trains, `restart` when the
   * same ones start a new activation (fresh state: BAdam's fixed mode, or ratio mode's next masks), else nothing.
   */
  changeAt(step: number): 'switch' | 'restart' | undefined {
    const next = this.blockAt(step);
    if (!this.current || next.names.join() !== this.current.names.join()) return 'switch';
    return next.since !== this.current.since ? 'restart' : undefined;
  }

  /** Makes the block of step `step` the trainable set of the model; returns it. */
  activate(step: number, log: (line: string) => void): ParameterBlock {
    const block = this.blockAt(step);
    const active = new Set(block.names);
    for (const p of this.pool) this.model.setTrainable(p.name, active.has(p.name));
    this.current = block;
    const line = this.optimizer.describeBlock?.(block);
    if (line) log(line);
    return block;
  }

  /** The finished block's trained values (by name; other entries such as a value head are ignored) into the base. */
  retire(values: ReadonlyMap<string, Float32Array>): void {
    const pool = new Set(this.pool.map((p) => p.name));
    this.model.setWeights(new Map([...values].filter(([name]) => pool.has(name))));
  }

  /** Every trainable base tensor as a checkpoint saved it (blocks trained before it live only there). */
  loadBase(checkpoint: string): void {
    this.model.setWeights(readCheckpointWeights(checkpoint, this.pool.map((p) => p.name)));
  }
}
