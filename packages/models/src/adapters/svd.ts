import { TunekitError } from '@tunekit/kernel';
import type { Rng } from '../rng';

/**
 * A thin SVD A ≈ U diag(s) Vᵀ of an m × n matrix, k singular triplets in descending order. U is m × k and V is n × k,
 * both row-major; float64 throughout.
 */
export interface Svd {
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly u: Float64Array;
  readonly s: Float64Array;
  readonly v: Float64Array;
}

function dot(a: Float64Array, b: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] * b[i];
  return sum;
}

/** Columns of a row-major m × n matrix, each its own array (column-major working storage). */
function columnsOf(a: ArrayLike<number>, m: number, n: number): Float64Array[] {
  const cols = Array.from({ length: n }, () => new Float64Array(m));
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) cols[j][i] = a[i * n + j];
  return cols;
}

function rowMajor(cols: readonly Float64Array[], rows: number): Float64Array {
  const out = new Float64Array(rows * cols.length);
  cols.forEach((c, j) => {
    for (let i = 0; i < rows; i++) out[i * cols.length + j] = c[i];
  });
  return out;
}

/**
 * Exact thin SVD by one-sided (Hestenes) Jacobi: plane rotations orthogonalize the columns of A (m >= n; a wide
 * matrix is transposed first) until every pair is orthogonal to machine precision; the column norms are the singular
 * values. O(m n²) per sweep and a handful of sweeps: meant for small matrices. Accurate to ~1e-15 relative.
 */
export function svdJacobi(a: ArrayLike<number>, m: number, n: number): Svd {
  if (a.length !== m * n) throw new TunekitError(`svdJacobi: ${a.length} values for a ${m} x ${n} matrix`);
  if (m < n) {
    const t = new Float64Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j];
    const r = svdJacobi(t, n, m);
    return { m, n, k: r.k, u: r.v, s: r.s, v: r.u };
  }
  const u = columnsOf(a, m, n);
  const v = Array.from({ length: n }, (_, j) => {
    const e = new Float64Array(n);
    e[j] = 1;
    return e;
  });
  const eps = 1e-15;
  for (let sweep = 0; sweep < 80; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const up = u[p];
        const uq = u[q];
        const alpha = dot(up, up);
        const beta = dot(uq, uq);
        const gamma = dot(up, uq);
        if (Math.abs(gamma) <= eps * Math.sqrt(alpha * beta) || gamma === 0) continue;
        rotated = true;
        // The rotation that zeroes the (p, q) entry of the 2 × 2 Gram matrix [[alpha, gamma], [gamma, beta]].
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < m; i++) {
          const x = up[i];
          const y = uq[i];
          up[i] = c * x - s * y;
          uq[i] = s * x + c * y;
        }
        const vp = v[p];
        const vq = v[q];
        for (let i = 0; i < n; i++) {
          const x = vp[i];
          const y = vq[i];
          vp[i] = c * x - s * y;
          vq[i] = s * x + c * y;
        }
      }
    }
    if (!rotated) break;
  }
  const sigma = u.map((col) => Math.sqrt(dot(col, col)));
  const order = sigma.map((_, j) => j).sort((x, y) => sigma[y] - sigma[x]);
  const uCols = order.map((j) => {
    const col = u[j];
    const norm = sigma[j];
    return norm > 0 ? col.map((x) => x / norm) : new Float64Array(m);
  });
  return { m, n, k: n, u: rowMajor(uCols, m), s: Float64Array.from(order, (j) => sigma[j]), v: rowMajor(order.map((j) => v[j]), n) };
}

/** Orthonormalizes columns in place (modified Gram-Schmidt, twice for stability); a dependent column becomes zero. */
export function orthonormalizeColumns(cols: Float64Array[]): void {
  for (let pass = 0; pass < 2; pass++) {
    for (let j = 0; j < cols.length; j++) {
      const c = cols[j];
      for (let i = 0; i < j; i++) {
        const proj = dot(cols[i], c);
        const qi = cols[i];
        for (let t = 0; t < c.length; t++) c[t] -= proj * qi[t];
      }
      const norm = Math.sqrt(dot(c, c));
      if (norm > 1e-300) for (let t = 0; t < c.length; t++) c[t] /= norm;
      else c.fill(0);
    }
  }
}

/** Y = A X for row-major A (m × n) and X given as columns of length n; returns columns of length m. */
function times(a: ArrayLike<number>, m: number, n: number, xs: readonly Float64Array[]): Float64Array[] {
  const ys = xs.map(() => new Float64Array(m));
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) row[j] = a[i * n + j];
    xs.forEach((x, k) => (ys[k][i] = dot(row, x)));
  }
  return ys;
}

/** Z = Aᵀ Y for row-major A (m × n) and Y given as columns of length m; returns columns of length n. */
function timesTransposed(a: ArrayLike<number>, m: number, n: number, ys: readonly Float64Array[]): Float64Array[] {
  const zs = ys.map(() => new Float64Array(n));
  for (let i = 0; i < m; i++) {
    const base = i * n;
    ys.forEach((y, k) => {
      const yi = y[i];
      if (yi === 0) return;
      const z = zs[k];
      for (let j = 0; j < n; j++) z[j] += yi * a[base + j];
    });
  }
  return zs;
}

/**
 * Randomized rank-q SVD as torch.svd_lowrank computes it (Halko, Martinsson, Tropp 2011, algorithm 4.4): a Gaussian
 * sketch A Ω, orthonormalized, refined by `niter` subspace iterations (orthonormalizing after each product with Aᵀ
 * and A), then the exact SVD of the small q × n matrix Qᵀ A. Costs O(m n q (2 niter + 2)).
 */
export function svdLowRank(a: ArrayLike<number>, m: number, n: number, q: number, niter: number, rng: Rng): Svd {
  if (a.length !== m * n) throw new TunekitError(`svdLowRank: ${a.length} values for a ${m} x ${n} matrix`);
  if (q < 1 || q > Math.min(m, n)) throw new TunekitError(`svdLowRank: rank ${q} must be between 1 and min(${m}, ${n})`);
  const omega = Array.from({ length: q }, () => Float64Array.from({ length: n }, () => rng.normal()));
  let basis = times(a, m, n, omega);
  orthonormalizeColumns(basis);
  for (let i = 0; i < niter; i++) {
    const z = timesTransposed(a, m, n, basis);
    orthonormalizeColumns(z);
    basis = times(a, m, n, z);
    orthonormalizeColumns(basis);
  }
  // Bᵀ = Aᵀ Q is n × q (columns = rows of B).
  return svdFromRange(basis, rowMajor(timesTransposed(a, m, n, basis), n), m, n);
}

/**
 * The last step of a randomized SVD: given Q (q orthonormal columns of length m) spanning the range of A and
 * Bᵀ = Aᵀ Q (row-major n × q), the exact SVD Bᵀ = Vb S Ubᵀ gives A ≈ Q B = (Q Ub) S Vbᵀ.
 */
export function svdFromRange(basis: readonly Float64Array[], bt: ArrayLike<number>, m: number, n: number): Svd {
  const q = basis.length;
  const small = svdJacobi(bt, n, q);
  const u = new Float64Array(m * q);
  for (let i = 0; i < m; i++) {
    for (let k = 0; k < q; k++) {
      let sum = 0;
      for (let t = 0; t < q; t++) sum += basis[t][i] * small.v[t * q + k];
      u[i * q + k] = sum;
    }
  }
  return { m, n, k: q, u, s: small.s, v: small.u };
}
