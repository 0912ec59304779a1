/**
 * Hugging Face's logits processors and warpers on one row of scores (a vocabulary-sized array), in the order
 * `generate` applies them: repetition penalty, then temperature, top-k, top-p. Scores are float64 copies of the
 * float32 logits so that softmax sums and cumulative masses do not lose precision.
 */

/**
 * RepetitionPenaltyLogitsProcessor: every token already in the sequence (prompt and generated tokens) gets its
 * score divided by `penalty` when positive and multiplied by it when negative; each token counts once.
 */
export function applyRepetitionPenalty(scores: Float64Array, context: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  const seen = new Set<number>();
  for (const id of context) {
    if (seen.has(id) || id < 0 || id >= scores.length) continue;
    seen.add(id);
    const s = scores[id];
    scores[id] = s < 0 ? s * penalty : s / penalty;
  }
}

/** TemperatureLogitsWarper: scores / temperature. */
export function applyTemperature(scores: Float64Array, temperature: number): void {
  if (temperature === 1) return;
  for (let i = 0; i < scores.length; i++) scores[i] /= temperature;
}

/** TopKLogitsWarper: scores below the k-th largest become -Infinity (ties with it are kept); k = 0 disables. */
export function applyTopK(scores: Float64Array, topK: number): void {
  if (topK <= 0 || topK >= scores.length) return;
  const kth = kthLargest(scores, topK);
  for (let i = 0; i < scores.length; i++) if (scores[i] < kth) scores[i] = -Infinity;
}

/**
 * TopPLogitsWarper: sorted ascending, tokens whose cumulative probability is at most 1 - top_p are removed and the
 * most likely token always stays, so what remains is the smallest set of most likely tokens with mass >= top_p.
 */
export function applyTopP(scores: Float64Array, topP: number): void {
  if (topP >= 1) return;
  const probs = softmax(scores);
  // A token stays iff the tokens ranked above it hold less than top_p, so only the head needs sorting: the most
  // likely 1024 usually hold top_p already (a full sort of a 50k vocabulary per row and step would dominate).
  let head = Array.from(probs.keys()).filter((i) => probs[i] > 0);
  if (head.length > 1024) {
    const cut = kthLargest(probs, 1024);
    const top = head.filter((i) => probs[i] >= cut);
    if (top.reduce((m, i) => m + probs[i], 0) >= topP) head = top;
  }
  head.sort((a, b) => probs[b] - probs[a] || a - b);
  const keep = new Uint8Array(scores.length);
  let above = 0;
  for (const i of head) {
    if (above >= topP) break;
    keep[i] = 1;
    above += probs[i];
  }
  for (let i = 0; i < scores.length; i++) if (!keep[i]) scores[i] = -Infinity;
}

export function softmax(scores: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < scores.length; i++) if (scores[i] > max) max = scores[i];
  const out = new Float64Array(scores.length);
  let sum = 0;
  for (let i = 0; i < scores.length; i++) {
    out[i] = Math.exp(scores[i] - max);
    sum += out[i];
  }
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

export function logSoftmax(scores: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < scores.length; i++) if (scores[i] > max) max = scores[i];
  let sum = 0;
  for (let i = 0; i < scores.length; i++) sum += Math.exp(scores[i] - max);
  const logZ = max + Math.log(sum);
  const out = new Float64Array(scores.length);
  for (let i = 0; i < scores.length; i++) out[i] = scores[i] - logZ;
  return out;
}

/** The first index of the largest score (torch.argmax). */
export function argmax(scores: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i] > scores[best]) best = i;
  return best;
}

/** Draws an index from `probs` (summing to 1) with the uniform number `u` in [0, 1). */
export function sampleIndex(probs: ArrayLike<number>, u: number): number {
  let cumulative = 0;
  let last = -1;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] <= 0) continue;
    cumulative += probs[i];
    last = i;
    if (u < cumulative) return i;
  }
  return last; // rounding left u just above the total mass
}

/** The k-th largest value (k >= 1) by partial selection. */
export function kthLargest(values: ArrayLike<number>, k: number): number {
  const a = Float64Array.from(values);
  let lo = 0;
  let hi = a.length - 1;
  const target = k - 1; // index in descending order
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] > pivot) i++;
      while (a[j] < pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else return a[target];
  }
  return a[target];
}

/** Indices of the `k` largest values, largest first; equal values keep index order (lower index first). */
export function topIndices(values: ArrayLike<number>, k: number): number[] {
  const n = Math.min(k, values.length);
  if (n <= 0) return [];
  const kth = kthLargest(values, n);
  const picked: number[] = [];
  for (let i = 0; i < values.length; i++) if (values[i] > kth) picked.push(i);
  for (let i = 0; i < values.length && picked.length < n; i++) if (values[i] === kth) picked.push(i);
  return picked.sort((a, b) => values[b] - values[a] || a - b);
}

/** What `chooseToken` reads of the generation settings. */
export interface TokenChoice {
  readonly doSample: boolean;
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly repetitionPenalty: number;
}

/**
 * The next token of row `row` of [rows, vocab] logits, as Hugging Face's generate picks it: the repetition penalty
 * over `context` (prompt and tokens so far), then the argmax, or with sampling temperature, top-k and top-p and a
 * draw from `random` (only when sampling, so greedy rows leave the generator untouched).
 */
export function chooseToken(logits: Float32Array, row: number, vocab: number, context: readonly number[], s: TokenChoice, random: { uniform(): number }): number {
  const scores = Float64Array.from(logits.subarray(row * vocab, (row + 1) * vocab));
  applyRepetitionPenalty(scores, context, s.repetitionPenalty);
  if (!s.doSample) return argmax(scores);
  applyTemperature(scores, s.temperature);
  applyTopK(scores, s.topK);
  applyTopP(scores, s.topP);
  return sampleIndex(softmax(scores), random.uniform());
}
