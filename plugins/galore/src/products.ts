import { Graph, Session, type SessionOptions } from '@tunekit/graph';

/**
 * The matrix products of a randomized SVD, run by onnxruntime: A X and Aᵀ Y for a gradient A (m × n) and thin
 * matrices X (n × q), Y (m × q), all row-major float32. Two small sessions with symbolic sizes serve every matrix.
 */
export class MatrixProducts {
  private constructor(
    private readonly times: Session,
    private readonly timesTransposed: Session,
  ) {}

  static async create(options: SessionOptions = {}): Promise<MatrixProducts> {
    const build = (transposed: boolean) => {
      const g = new Graph(transposed ? 'galore-at-y' : 'galore-a-x');
      const a = g.input('a', 'float32', ['m', 'n']);
      const x = g.input('x', 'float32', [transposed ? 'm' : 'n', 'q']);
      g.output(g.MatMul(transposed ? g.Transpose(a, [1, 0]) : a, x), 'y');
      return Session.create(g, options);
    };
    return new MatrixProducts(await build(false), await build(true));
  }

  /** A X (transposed: Aᵀ X) as an m × q (n × q) row-major array. */
  async multiply(a: Float32Array, m: number, n: number, x: Float32Array, q: number, transposed: boolean): Promise<Float32Array> {
    const session = transposed ? this.timesTransposed : this.times;
    const out = await session.run({
      a: { dtype: 'float32', dims: [m, n], data: a },
      x: { dtype: 'float32', dims: [transposed ? m : n, q], data: x },
    });
    return out.y.data as Float32Array;
  }

  async release(): Promise<void> {
    await Promise.all([this.times.release(), this.timesTransposed.release()]);
  }
}
