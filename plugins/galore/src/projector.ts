import { createRng, orthonormalizeColumns, svdFromRange, svdJacobi, type Svd } from '@tunekit/models';
import type { MatrixProducts } from './products';

/** LLaMA-Factory's galore_proj_type values (GaLore's projector types). */
export const PROJECTION_TYPES = ['std', 'reverse_std', 'right', 'left', 'full'] as const;
export type ProjectionType = (typeof PROJECTION_TYPES)[number];

/**
 * Which sides of an m × n gradient G a projector type multiplies: a left projector A (m × r, top left singular
 * vectors) gives the low-rank gradient Aᵀ G (r × n); a right projector B (r × n, top right singular vectors) gives
 * G Bᵀ (m × r); `full` uses both, Aᵀ G Bᵀ (r × r). `std` projects the longer side away (right for tall or square
 * matrices, left for wide ones), `reverse_std` the shorter one.
 */
export function projectionSides(type: ProjectionType, shape: readonly number[]): { left: boolean; right: boolean } {
  const [m, n] = shape;
  switch (type) {
    case 'std':
      return { left: m < n, right: m >= n };
    case 'reverse_std':
      return { left: m >= n, right: m < n };
    case 'right':
      return { left: false, right: true };
    case 'left':
      return { left: true, right: false };
    case 'full':
      return { left: true, right: true };
  }
}

/** The rank a projector can have: galore_rank, at most the matrix's smaller side. */
export function effectiveRank(rank: number, shape: readonly number[]): number {
  return Math.min(rank, shape[0], shape[1]);
}

/** Shapes of the projectors and of the low-rank moments of an m × n parameter. */
export function projectedShapes(type: ProjectionType, rank: number, shape: readonly number[]): { left?: number[]; right?: number[]; low: number[] } {
  const [m, n] = shape;
  const r = effectiveRank(rank, shape);
  const sides = projectionSides(type, shape);
  return {
    left: sides.left ? [m, r] : undefined,
    right: sides.right ? [r, n] : undefined,
    low: [sides.left ? r : m, sides.right ? r : n],
  };
}

/** Matrices up to this smaller side get an exact SVD; larger ones a randomized one. */
export const EXACT_SVD_LIMIT = 64;
/** Randomized SVD: extra sketch columns beyond the rank, and subspace iterations. */
export const OVERSAMPLING = 8;
export const POWER_ITERATIONS = 4;

/** Row-major m × q from q columns of length m, and back. */
function fromColumns(cols: readonly Float64Array[], m: number): Float32Array {
  const q = cols.length;
  const out = new Float32Array(m * q);
  cols.forEach((c, k) => {
    for (let i = 0; i < m; i++) out[i * q + k] = c[i];
  });
  return out;
}
function toColumns(a: Float32Array, m: number, q: number): Float64Array[] {
  return Array.from({ length: q }, (_, k) => {
    const c = new Float64Array(m);
    for (let i = 0; i < m; i++) c[i] = a[i * q + k];
    return c;
  });
}

/**
 * Randomized rank-q SVD (Halko, Martinsson, Tropp 2011, algorithm 4.4, as torch.svd_lowrank): a Gaussian sketch
 * A Ω orthonormalized, refined by `niter` subspace iterations, then the exact SVD of the small q × n matrix Qᵀ A. The
 * products with A run in onnxruntime (`products`); orthonormalization and the small SVD on the host, in float64.
 */
export async function randomizedSvd(a: Float32Array, m: number, n: number, q: number, niter: number, seed: number, products: MatrixProducts): Promise<Svd> {
  const rng = createRng(seed);
  const omega = Float32Array.from({ length: n * q }, () => rng.normal());
  let basis = toColumns(await products.multiply(a, m, n, omega, q, false), m, q);
  orthonormalizeColumns(basis);
  for (let i = 0; i < niter; i++) {
    const z = toColumns(await products.multiply(a, m, n, fromColumns(basis, m), q, true), n, q);
    orthonormalizeColumns(z);
    basis = toColumns(await products.multiply(a, m, n, fromColumns(z, n), q, false), m, q);
    orthonormalizeColumns(basis);
  }
  // Bᵀ = Aᵀ Q (n × q).
  return svdFromRange(basis, await products.multiply(a, m, n, fromColumns(basis, m), q, true), m, n);
}

/**
 * The top-r singular vectors of an m × n gradient, as GaLore's get_orthogonal_matrix takes them from torch.linalg.svd:
 * exact (one-sided Jacobi) when min(m, n) <= 64, otherwise a randomized SVD with rank + 8 sketch columns and 4
 * subspace iterations, seeded by `seed` so a resumed run computes the same projector. Singular vectors are defined up
 * to sign; GaLore's update does not depend on the signs within one projection period.
 */
export async function topSingularVectors(grad: Float32Array, shape: readonly number[], rank: number, seed: number, products: MatrixProducts): Promise<Svd> {
  const [m, n] = shape;
  const r = effectiveRank(rank, shape);
  if (Math.min(m, n) <= EXACT_SVD_LIMIT) return svdJacobi(grad, m, n);
  const q = Math.min(r + OVERSAMPLING, m, n);
  return randomizedSvd(grad, m, n, q, POWER_ITERATIONS, seed, products);
}

/** The projectors of `sides` from an SVD, float32 row-major: A = U[:, :r] (m × r), B = Vᵀ[:r, :] (r × n). */
export function projectorsOf(svd: Svd, r: number, sides: { left: boolean; right: boolean }): { left?: Float32Array; right?: Float32Array } {
  const { m, n, k, u, v } = svd;
  let left: Float32Array | undefined;
  let right: Float32Array | undefined;
  if (sides.left) {
    left = new Float32Array(m * r);
    for (let i = 0; i < m; i++) for (let t = 0; t < r; t++) left[i * r + t] = u[i * k + t];
  }
  if (sides.right) {
    right = new Float32Array(r * n);
    for (let t = 0; t < r; t++) for (let j = 0; j < n; j++) right[t * n + j] = v[j * k + t];
  }
  return { left, right };
}

/** A 32-bit seed from a parameter name and a step, for the randomized SVD. */
export function projectionSeed(name: string, step: number): number {
  let h = 2166136261 ^ step;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return h >>> 0;
}
