import type { Batch, IntTensor } from '@tunekit/data';
import type { HostTensor } from '@tunekit/graph';
import { IGNORE_INDEX } from '@tunekit/models';
import type { Completion } from './rollout';

/**
 * Completions laid out for a full forward pass, one row each: the prompt left-padded to the longest prompt (width P),
 * then the completion, right-padded to the longest completion (width C). Labels are the completion tokens (IGNORE_INDEX
 * elsewhere), so `tokenLogps` column t holds log p(token t+1): completion token i sits at column P - 1 + i. Every
 * per-token tensor of the RL graphs ([rows, P + C]) uses that column layout, and `mask` is 1 exactly there.
 */
export class RolloutRows {
  readonly rows: number;
  readonly width: number;
  readonly batch: Batch;
  /** [rows * width] 1 at the columns of real completion tokens. */
  readonly mask: Float32Array;

  constructor(
    readonly completions: readonly Completion[],
    readonly promptWidth: number,
    completionWidth: number,
    padTokenId: number,
  ) {
    const rows = completions.length;
    const width = promptWidth + completionWidth;
    const ids = new Int32Array(rows * width).fill(padTokenId);
    const attention = new Int32Array(rows * width);
    const positions = new Int32Array(rows * width).fill(1);
    const labels = new Int32Array(rows * width).fill(IGNORE_INDEX);
    const mask = new Float32Array(rows * width);
    completions.forEach((c, r) => {
      const pads = promptWidth - c.promptIds.length;
      const tokens = [...c.promptIds, ...c.tokenIds];
      tokens.forEach((id, i) => {
        const at = r * width + pads + i;
        ids[at] = id;
        attention[at] = 1;
        positions[at] = i;
      });
      c.tokenIds.forEach((id, i) => {
        labels[r * width + promptWidth + i] = id;
        mask[r * width + promptWidth - 1 + i] = 1;
      });
    });
    const dims = [rows, width];
    const tensor = (data: Int32Array): IntTensor => ({ dtype: 'int32', dims: [...dims], data });
    this.rows = rows;
    this.width = width;
    this.mask = mask;
    this.batch = { input_ids: tensor(ids), attention_mask: tensor(attention), position_ids: tensor(positions), labels: tensor(labels) };
  }

  /** Rows for `completions`, padded to their own longest prompt and completion. */
  static of(completions: readonly Completion[], padTokenId: number): RolloutRows {
    if (!completions.length) throw new RangeError('RolloutRows: no completions');
    const promptWidth = Math.max(...completions.map((c) => c.promptIds.length));
    const completionWidth = Math.max(1, ...completions.map((c) => c.tokenIds.length));
    return new RolloutRows(completions, promptWidth, completionWidth, padTokenId);
  }

  /** The column of completion token `i`. */
  column(i: number): number {
    return this.promptWidth - 1 + i;
  }

  /** Per-completion-token values (one array per row) as a [rows, width] tensor in the column layout, 0 elsewhere. */
  spread(perToken: readonly (readonly number[])[]): HostTensor {
    const data = new Float32Array(this.rows * this.width);
    perToken.forEach((values, r) => values.forEach((v, i) => (data[r * this.width + this.column(i)] = v)));
    return { dtype: 'float32', dims: [this.rows, this.width], data };
  }

  /** The completion-token values of a [rows, width] output, one array per row (each as long as its completion). */
  gather(data: ArrayLike<number>): number[][] {
    return this.completions.map((c, r) => c.tokenIds.map((_, i) => Number(data[r * this.width + this.column(i)])));
  }

  /** The response mask as a feed. */
  maskFeed(): HostTensor {
    return { dtype: 'float32', dims: [this.rows, this.width], data: this.mask };
  }

  /** [rows, width] 1 at each row's last real token (the last completion token), where a reward model reads its head. */
  lastTokenFeed(): HostTensor {
    const data = new Float32Array(this.rows * this.width);
    this.completions.forEach((c, r) => (data[r * this.width + this.promptWidth + c.tokenIds.length - 1] = 1));
    return { dtype: 'float32', dims: [this.rows, this.width], data };
  }
}
