import { contribute, resolveToken, REWARD_FUNCTION, RUN_CONFIG, STAGE, type DependencyContainer, type ResolvedConfig } from '@tunekit/kernel';
import { RL_DEFAULTS } from './options';
import { GrpoRecipe, PpoRecipe } from './recipes';
import { accuracyReward, cosineReward, formatReward, repetitionReward, softOverlongReward } from './rewards';

export const name = '@tunekit/plugin-rl';

export { options } from './options';

/** A numeric key of the run: its value, else the plugin's default, else `fallback` (keys without a default). */
function num(config: ResolvedConfig, key: keyof typeof RL_DEFAULTS, fallback = NaN): number {
  const value = config[key];
  if (typeof value === 'number') return value;
  const byDefault = RL_DEFAULTS[key];
  return typeof byDefault === 'number' ? byDefault : fallback;
}

/** Contributes the ppo and grpo stages and the built-in reward functions (ms-swift's names). */
export function register(container: DependencyContainer): void {
  contribute(container, STAGE, { id: 'grpo', description: 'GRPO: group-relative policy optimisation of sampled completions scored by reward_funcs', provider: { useFactory: (run) => new GrpoRecipe(run) } });
  contribute(container, STAGE, { id: 'ppo', description: 'PPO against a reward model (reward_model), with a value head and adaptive KL control', provider: { useFactory: (run) => new PpoRecipe(run) } });
  const config = (run: DependencyContainer) => resolveToken(run, RUN_CONFIG);
  contribute(container, REWARD_FUNCTION, { id: 'accuracy', description: 'GRPO: 1 when the completion is the reference answer (the dataset response), else 0', provider: { useFactory: () => accuracyReward() } });
  contribute(container, REWARD_FUNCTION, { id: 'format', description: 'GRPO: 1 when the completion is <think>...</think><answer>...</answer>, else 0', provider: { useFactory: () => formatReward() } });
  contribute(container, REWARD_FUNCTION, {
    id: 'cosine',
    description: 'GRPO: accuracy scaled by completion length on a half cosine (cosine_* keys)',
    provider: {
      useFactory: (run) => {
        const c = config(run);
        return cosineReward({
          minLenValueWrong: num(c, 'cosine_min_len_value_wrong'),
          maxLenValueWrong: num(c, 'cosine_max_len_value_wrong'),
          minLenValueCorrect: num(c, 'cosine_min_len_value_correct'),
          maxLenValueCorrect: num(c, 'cosine_max_len_value_correct'),
          maxLen: num(c, 'cosine_max_len', num(c, 'max_completion_length')),
        });
      },
    },
  });
  contribute(container, REWARD_FUNCTION, {
    id: 'repetition',
    description: 'GRPO: penalty for repeated word n-grams (repetition_n_grams, repetition_max_penalty)',
    provider: { useFactory: (run) => repetitionReward({ nGrams: num(config(run), 'repetition_n_grams'), maxPenalty: num(config(run), 'repetition_max_penalty') }) },
  });
  contribute(container, REWARD_FUNCTION, {
    id: 'soft_overlong',
    description: 'GRPO: linear penalty over the last soft_cache_length tokens before soft_max_length',
    provider: {
      useFactory: (run) => {
        const c = config(run);
        return softOverlongReward({ maxLength: num(c, 'soft_max_length', num(c, 'max_completion_length')), cacheLength: num(c, 'soft_cache_length', 1) });
      },
    },
  });
}
