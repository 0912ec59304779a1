import type { RewardInput } from '@tunekit/kernel';
import { accuracyReward, cosineReward, formatReward, repetitionReward, softOverlongReward } from '../src/rewards';

function input(completions: string[], extra: Partial<RewardInput> = {}): RewardInput {
  return {
    completions,
    prompts: completions.map(() => 'Repeat after me: a b'),
    solutions: completions.map(() => 'a b'),
    completionIds: completions.map((c) => Array.from({ length: c.length }, (_, i) => i)),
    ...extra,
  };
}

describe('built-in reward functions (ms-swift names)', () => {
  it('accuracy: 1 for the reference answer (whitespace-insensitive), 0 otherwise, NaN without one', async () => {
    const scores = await accuracyReward().score(input(['a b', '  a   b\n', 'a c', 'x'], { solutions: ['a b', 'a b', 'a b', undefined] }));
    expect(scores.slice(0, 3)).toEqual([1, 1, 0]);
    expect(scores[3]).toBeNaN();
  });

  it("format: ms-swift's <think>...</think><answer>...</answer> with nothing after", async () => {
    const scores = await formatReward().score(input(['<think>x\ny</think>\n<answer>4</answer>', '<think>x</think><answer>4</answer> more', 'answer: 4', ' <think>x</think><answer>4</answer>']));
    expect(scores).toEqual([1, 0, 0, 0]);
  });

  it('cosine: correct answers fall from 1 to 0.5 over the length, wrong ones from 0 to -0.5, on a half cosine', async () => {
    const cosine = cosineReward({ minLenValueWrong: 0, maxLenValueWrong: -0.5, minLenValueCorrect: 1, maxLenValueCorrect: 0.5, maxLen: 10 });
    const ids = (n: number) => Array.from({ length: n }, () => 0);
    const scores = await cosine.score(input(['a b', 'a b', 'a b', 'no', 'no'], { completionIds: [ids(0), ids(5), ids(10), ids(0), ids(5)] }));
    // t = T/2: halfway, (1 - cos(pi/2)) / 2 = 1/2
    [1, 0.75, 0.5, 0, -0.25].forEach((want, i) => expect(scores[i]).toBeCloseTo(want, 12));
  });

  it('repetition: (1 - distinct n-grams / n-grams) * max_penalty, 0 below n words', async () => {
    const repetition = repetitionReward({ nGrams: 2, maxPenalty: -1 });
    // "a b a b a": bigrams ab ba ab ba -> 2 distinct of 4 -> -0.5; "a b c": 2 of 2 -> 0
    const scores = await repetition.score(input(['a b a b a', 'A b c', 'a', '']));
    expect(scores.map((s) => s + 0)).toEqual([-0.5, 0, 0, 0]);
  });

  it('soft_overlong: 0 until max - cache tokens, then -(L - (max - cache)) / cache', async () => {
    const overlong = softOverlongReward({ maxLength: 10, cacheLength: 4 });
    const ids = (n: number) => Array.from({ length: n }, () => 0);
    const scores = await overlong.score(input(['', '', '', ''], { completionIds: [ids(3), ids(6), ids(8), ids(10)] }));
    expect(scores.map((s) => s + 0)).toEqual([0, 0, -0.5, -1]);
  });
});
