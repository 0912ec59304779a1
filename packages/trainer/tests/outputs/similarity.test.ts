import { rouge, sentenceBleu, similarityMetrics, similarityScores, words } from '../../src';

describe("LLaMA-Factory's predict metrics", () => {
  it('split words as jieba does for non-CJK text: letter/digit runs, every other character alone', () => {
    expect(words('Hello, world 3.5e-2!')).toEqual(['Hello', ',', 'world', '3', '.', '5e', '-', '2', '!']);
    expect(words('  ')).toEqual([]);
  });

  it('score a perfect answer 100 on every metric', () => {
    expect(similarityScores('honey candle river', 'honey candle river')).toEqual({ 'rouge-1': 100, 'rouge-2': 100, 'rouge-l': 100, 'bleu-4': 100 });
  });

  it('compute ROUGE F-scores on word sets (n-grams) and the LCS, by hand', () => {
    // hyp {honey, river}, ref {honey, candle, river}: p = 1, r = 2/3, f = 0.8; no shared bigram; LCS 2.
    const r = rouge('honey river', 'honey candle river');
    expect(r['rouge-1']).toBeCloseTo(0.8, 7);
    expect(r['rouge-2']).toBe(0);
    expect(r['rouge-l']).toBeCloseTo(0.8, 7);
    // Repeated words count once in ROUGE-N (sets), every time in the LCS: hyp "a a b" vs ref "a b": LCS 2, p 2/3, r 1.
    expect(rouge('a a b', 'a b')['rouge-1']).toBeCloseTo(1, 7);
    expect(rouge('a a b', 'a b')['rouge-l']).toBeCloseTo(0.8, 7);
    expect(rouge('', 'a b')).toEqual({ 'rouge-1': 0, 'rouge-2': 0, 'rouge-l': 0 });
  });

  it("compute NLTK's sentence BLEU-4 with smoothing method 3 and the brevity penalty, by hand", () => {
    // hyp "ab" vs ref "abc": p1 = 2/2, p2 = 1/1, p3 and p4 have no n-grams: 1/(2*1), 1/(4*1); BP = exp(1 - 3/2).
    expect(sentenceBleu([...'abc'], [...'ab'])).toBeCloseTo(Math.exp(-0.5) * Math.pow(1 * 1 * 0.5 * 0.25, 0.25), 12);
    // Clipping: "aaaa" vs "a": p1 = 1/4; no bigram matches (3 of them): 1/(2*3); then 1/(4*2), 1/(8*1); longer, BP 1.
    expect(sentenceBleu(['a'], [...'aaaa'])).toBeCloseTo(Math.pow((1 / 4) * (1 / 6) * (1 / 8) * (1 / 8), 0.25), 12);
    expect(sentenceBleu([...'abc'], [...'xyz'])).toBe(0);
    expect(sentenceBleu([...'abc'], [])).toBe(0);
  });

  it('average the per-example scores (x100, 4 decimals) under the predict_ names', () => {
    const metrics = similarityMetrics([
      { predict: 'honey candle river', label: 'honey candle river' },
      { predict: 'honey river', label: 'honey candle river' },
    ]);
    expect(Object.keys(metrics).sort()).toEqual(['predict_bleu-4', 'predict_rouge-1', 'predict_rouge-2', 'predict_rouge-l']);
    expect(metrics['predict_rouge-1']).toBeCloseTo((100 + 80) / 2, 4);
    expect(metrics['predict_rouge-2']).toBeCloseTo(50, 4);
  });
});
