/**
 * LLaMA-Factory's text metrics for predict_with_generate (ComputeSimilarity): per example, ROUGE-1, ROUGE-2 and
 * ROUGE-L F-scores on words (rouge_chinese, as LLaMA-Factory calls it) and a character-level sentence BLEU-4 with NLTK's
 * smoothing method 3, each x100 and rounded to 4 decimals; the metrics are their means (predict_bleu-4,
 * predict_rouge-1, predict_rouge-2, predict_rouge-l in predict_results.json).
 *
 * Words: LLaMA-Factory segments with jieba. For text without CJK characters this is the same as here: runs of ASCII
 * letters and digits are words, every other non-space character is a word of its own. CJK characters are single
 * words here, where jieba would join them into dictionary words, so ROUGE on Chinese text differs from
 * LLaMA-Factory's (BLEU, on characters, does not).
 */

const CJK = /[\u3400-\u9fff\uf900-\ufaff]/u;

/** Words of `text` (see above). */
export function words(text: string): string[] {
  const out: string[] = [];
  for (const match of text.matchAll(/[A-Za-z0-9]+|\S/gu)) out.push(match[0]);
  return out;
}

/** The set of n-grams of a word list, as rouge's exclusive Ngrams (keys joined by a separator that words lack). */
function ngramSet(list: readonly string[], n: number): Set<string> {
  const out = new Set<string>();
  for (let i = 0; i + n <= list.length; i++) out.add(list.slice(i, i + n).join('\u0000'));
  return out;
}

function fScore(precision: number, recall: number): number {
  return 2 * ((precision * recall) / (precision + recall + 1e-8));
}

function rougeN(hyp: readonly string[], ref: readonly string[], n: number): number {
  const h = ngramSet(hyp, n);
  const r = ngramSet(ref, n);
  let overlap = 0;
  for (const gram of h) if (r.has(gram)) overlap++;
  return fScore(h.size ? overlap / h.size : 0, r.size ? overlap / r.size : 0);
}

function lcsLength(a: readonly string[], b: readonly string[]): number {
  let previous = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    const row = new Array<number>(b.length + 1).fill(0);
    for (let j = 1; j <= b.length; j++) row[j] = a[i - 1] === b[j - 1] ? previous[j - 1] + 1 : Math.max(previous[j], row[j - 1]);
    previous = row;
  }
  return previous[b.length];
}

/** ROUGE-1, ROUGE-2, ROUGE-L F-scores of a prediction against its label (0 when either has no words). */
export function rouge(predict: string, label: string): { 'rouge-1': number; 'rouge-2': number; 'rouge-l': number } {
  const hyp = words(predict);
  const ref = words(label);
  if (!hyp.length || !ref.length) return { 'rouge-1': 0, 'rouge-2': 0, 'rouge-l': 0 };
  const lcs = lcsLength(ref, hyp);
  return { 'rouge-1': rougeN(hyp, ref, 1), 'rouge-2': rougeN(hyp, ref, 2), 'rouge-l': fScore(lcs / hyp.length, lcs / ref.length) };
}

/**
 * NLTK's sentence_bleu of `hypothesis` against one reference (sequences of tokens), weights 1/4 each, smoothing
 * method 3: an order with no match gets precision 1 / (2^k * its n-gram count), k = 1, 2, ... over such orders; no
 * unigram match gives 0; brevity penalty exp(1 - r / c) when the hypothesis is not longer.
 */
export function sentenceBleu(reference: readonly string[], hypothesis: readonly string[]): number {
  let logSum = 0;
  let zeroOrders = 0;
  for (let n = 1; n <= 4; n++) {
    const refCounts = new Map<string, number>();
    for (let i = 0; i + n <= reference.length; i++) {
      const key = reference.slice(i, i + n).join('\u0000');
      refCounts.set(key, (refCounts.get(key) ?? 0) + 1);
    }
    const hypCounts = new Map<string, number>();
    for (let i = 0; i + n <= hypothesis.length; i++) {
      const key = hypothesis.slice(i, i + n).join('\u0000');
      hypCounts.set(key, (hypCounts.get(key) ?? 0) + 1);
    }
    let clipped = 0;
    let total = 0;
    for (const [key, count] of hypCounts) {
      clipped += Math.min(count, refCounts.get(key) ?? 0);
      total += count;
    }
    const denominator = Math.max(1, total);
    if (clipped === 0) {
      if (n === 1) return 0;
      zeroOrders += 1;
      logSum += 0.25 * Math.log(1 / (2 ** zeroOrders * denominator));
    } else {
      logSum += 0.25 * Math.log(clipped / denominator);
    }
  }
  const c = hypothesis.length;
  const r = reference.length;
  const brevity = c > r ? 1 : c === 0 ? 0 : Math.exp(1 - r / c);
  return brevity * Math.exp(logSum);
}

const round4 = (v: number) => Math.round(v * 1e4) / 1e4;

/** The per-example scores (x100, 4 decimals) of LLaMA-Factory's ComputeSimilarity. */
export function similarityScores(predict: string, label: string): Record<'bleu-4' | 'rouge-1' | 'rouge-2' | 'rouge-l', number> {
  const r = rouge(predict, label);
  return {
    'rouge-1': round4(r['rouge-1'] * 100),
    'rouge-2': round4(r['rouge-2'] * 100),
    'rouge-l': round4(r['rouge-l'] * 100),
    'bleu-4': round4(sentenceBleu([...label], [...predict]) * 100),
  };
}

/** The means over examples, named as LLaMA-Factory's predict metrics (`predict_bleu-4`, ...). */
export function similarityMetrics(pairs: readonly { predict: string; label: string }[], prefix = 'predict'): Record<string, number> {
  const sums: Record<string, number> = { 'bleu-4': 0, 'rouge-1': 0, 'rouge-2': 0, 'rouge-l': 0 };
  for (const { predict, label } of pairs) for (const [key, value] of Object.entries(similarityScores(predict, label))) sums[key] += value;
  return Object.fromEntries(Object.entries(sums).map(([key, sum]) => [`${prefix}_${key}`, pairs.length ? sum / pairs.length : 0]));
}

/** Whether `text` has CJK characters, whose words tunekit segments differently from jieba (see above). */
export function hasCjk(text: string): boolean {
  return CJK.test(text);
}
