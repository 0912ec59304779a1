import type { RewardFunction, RewardInput } from '@tunekit/kernel';

// The built-in reward functions, with ms-swift's names and keys (swift/plugin/orm.py). Each is a contribution at the
// kernel's REWARD_FUNCTION point; a third-party plugin adds its own the same way.

/** Whitespace-insensitive text: trimmed, runs of whitespace as one space. */
export function normalizeAnswer(text: string): string {
  return text.trim().replace(/\s+/g, ' ');
}

/**
 * accuracy: 1 when the completion is the dataset's reference answer (the response column), compared with whitespace
 * normalised, else 0; NaN (not scored) when the prompt has no reference answer. ms-swift's accuracy parses math with
 * math_verify; tunekit compares text.
 */
export function accuracyReward(): RewardFunction {
  return {
    score: ({ completions, solutions }) =>
      completions.map((completion, i) => {
        const solution = solutions[i];
        return solution === undefined ? NaN : normalizeAnswer(completion) === normalizeAnswer(solution) ? 1 : 0;
      }),
  };
}

/** ms-swift's Format pattern: `<think>...</think>` then `<answer>...</answer>` and nothing after. */
export const FORMAT_PATTERN = /^<think>[\s\S]*?<\/think>\s*<answer>[\s\S]*?<\/answer>(?![\s\S])/;

/** format: 1 when the completion matches FORMAT_PATTERN, else 0. */
export function formatReward(pattern: RegExp = FORMAT_PATTERN): RewardFunction {
  return { score: ({ completions }) => completions.map((completion) => (pattern.test(completion) ? 1 : 0)) };
}

export interface CosineSettings {
  readonly minLenValueWrong: number;
  readonly maxLenValueWrong: number;
  readonly minLenValueCorrect: number;
  readonly maxLenValueCorrect: number;
  readonly maxLen: number;
}

/** ms-swift's cosfn: max_value - (max_value - min_value) * (1 - cos(t pi / T)) / 2. */
function cosfn(t: number, T: number, minValue: number, maxValue: number): number {
  return maxValue - ((maxValue - minValue) * (1 - Math.cos((t * Math.PI) / T))) / 2;
}

/**
 * cosine (arXiv 2502.03373, ms-swift's CosineReward): the accuracy decides the pair of values, the completion's length
 * in tokens L moves between them on a half cosine: correct answers from cosine_min_len_value_correct (L = 0) down to
 * cosine_max_len_value_correct (L = cosine_max_len), wrong ones from cosine_min_len_value_wrong to
 * cosine_max_len_value_wrong.
 */
export function cosineReward(settings: CosineSettings, accuracy: RewardFunction = accuracyReward()): RewardFunction {
  return {
    async score(input: RewardInput) {
      const correct = await accuracy.score(input);
      return input.completionIds.map((ids, i) => {
        const [atZero, atMax] = correct[i] >= 1 ? [settings.minLenValueCorrect, settings.maxLenValueCorrect] : [settings.minLenValueWrong, settings.maxLenValueWrong];
        return cosfn(ids.length, settings.maxLen, atMax, atZero);
      });
    },
  };
}

/**
 * repetition (ms-swift's RepetitionPenalty): over the lower-cased whitespace-separated words, (1 - distinct n-grams /
 * n-grams) * repetition_max_penalty; 0 for an empty completion or one shorter than n words.
 */
export function repetitionReward(settings: { readonly nGrams: number; readonly maxPenalty: number }): RewardFunction {
  return {
    score: ({ completions }) =>
      completions.map((completion) => {
        const words = completion.toLowerCase().split(/\s+/).filter(Boolean);
        if (completion === '' || words.length < settings.nGrams) return 0;
        const seen = new Set<string>();
        let total = 0;
        for (let i = 0; i + settings.nGrams <= words.length; i++) {
          seen.add(JSON.stringify(words.slice(i, i + settings.nGrams)));
          total++;
        }
        return (1 - seen.size / total) * settings.maxPenalty;
      }),
  };
}

/**
 * soft_overlong (DAPO's overlong penalty, ms-swift's SoftOverlong): 0 up to soft_max_length - soft_cache_length
 * tokens, then falling linearly, min(-(L - (max - cache)) / cache, 0).
 */
export function softOverlongReward(settings: { readonly maxLength: number; readonly cacheLength: number }): RewardFunction {
  const expected = settings.maxLength - settings.cacheLength;
  return { score: ({ completionIds }) => completionIds.map((ids) => Math.min(-(ids.length - expected) / settings.cacheLength, 0)) };
}
