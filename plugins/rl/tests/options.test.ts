import { composeSchema, contribute, KNOWN_PLUGINS, PluginScope, resolveContribution, REWARD_FUNCTION, STAGE, type ConfigIssue } from '@tunekit/kernel';
import * as plugin from '../src';
import { checkRlOptions, RL_KEYS } from '../src';

function issuesOf(config: Record<string, unknown>): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  checkRlOptions(config, (issue) => issues.push(issue));
  return issues;
}

describe('the RL keys in the kernel schema', () => {
  const scope = new PluginScope();
  scope.load(plugin);
  const schema = composeSchema(scope);
  const validate = (raw: Record<string, unknown>) => schema.validate({ model_name_or_path: 'm', ...raw }, scope.registry, { points: [STAGE] });

  it('owns exactly the keys the kernel catalog lists for @tunekit/plugin-rl', () => {
    const listed = KNOWN_PLUGINS.find((known) => known.package === '@tunekit/plugin-rl');
    expect(listed?.keys).toEqual(RL_KEYS);
    for (const key of RL_KEYS) expect(schema.ownerOf(key)).toBe('@tunekit/plugin-rl');
    expect(listed?.contributions).toEqual({ stage: ['ppo', 'grpo'], 'reward-function': ['accuracy', 'format', 'cosine', 'repetition', 'soft_overlong'] });
    expect(scope.registry.ids(STAGE)).toEqual(['grpo', 'ppo']);
    expect(scope.registry.ids(REWARD_FUNCTION)).toEqual(['accuracy', 'cosine', 'format', 'repetition', 'soft_overlong']);
  });

  it("has LLaMA-Factory's PPO defaults and ms-swift's GRPO defaults; reads ms-swift's space-separated lists", () => {
    const ppo = validate({ stage: 'ppo', reward_model: 'saves/rm' });
    expect(ppo.issues).toEqual([]);
    expect(ppo.ok && ppo.config).toMatchObject({ ppo_buffer_size: 1, ppo_epochs: 4, ppo_score_norm: false, ppo_target: 6, ppo_whiten_rewards: false, reward_model_type: 'lora', cliprange: 0.2, vf_coef: 0.1, gamma: 1, lam: 0.95 });
    const grpo = validate({ stage: 'grpo', reward_funcs: 'accuracy format', reward_weights: '1 0.5', per_device_train_batch_size: 16 });
    expect(grpo.issues).toEqual([]);
    expect(grpo.ok && grpo.config).toMatchObject({ num_generations: 8, max_completion_length: 512, epsilon: 0.2, beta: 0.04, loss_type: 'grpo', reward_funcs: ['accuracy', 'format'], reward_weights: [1, 0.5] });
  });

  it('reports every cross-key problem with the key and the fix', () => {
    const keys = (config: Record<string, unknown>) => issuesOf(config).map((issue) => issue.key);
    expect(keys({ stage: 'sft', ppo_epochs: 2, num_generations: 4 })).toEqual(['ppo_epochs', 'num_generations']);
    expect(issuesOf({ stage: 'sft', rlhf_type: 'grpo' })[0].message).toContain('Set stage: grpo and remove rlhf_type');
    expect(keys({ stage: 'grpo', reward_funcs: [] })).toEqual(['reward_funcs']);
    expect(issuesOf({ stage: 'grpo', reward_funcs: ['accuracy', 'format'], reward_weights: [1] })[0].message).toContain('one weight per function');
    expect(issuesOf({ stage: 'grpo', reward_funcs: ['accuracy'], num_generations: 8, per_device_train_batch_size: 12 })[0].message).toContain('set it to 16');
    expect(keys({ stage: 'grpo', reward_funcs: ['soft_overlong'], max_completion_length: 64 })).toEqual(['soft_cache_length']);
    expect(keys({ stage: 'grpo', reward_funcs: ['accuracy'], temperature: 0 })).toEqual(['temperature']);
    expect(keys({ stage: 'grpo', reward_funcs: ['accuracy'], load_best_model_at_end: true })).toEqual(['load_best_model_at_end']);
    expect(keys({ stage: 'ppo' })).toEqual(['reward_model']);
    expect(keys({ stage: 'ppo', reward_model: 'x', reward_model_type: 'lora', finetuning_type: 'full' })).toEqual(['reward_model_type']);
    expect(keys({ stage: 'ppo', reward_model: 'x', reward_model_type: 'lora', reward_model_adapters: 'a' })).toEqual(['reward_model_adapters']);
  });
});

describe('reward functions at the REWARD_FUNCTION point', () => {
  it('resolves the built-ins with their keys from the run config, and a third-party one beside them', async () => {
    const scope = new PluginScope();
    scope.load(plugin);
    scope.load({
      name: 'my-rewards',
      // The kernel's contribute() is all a third party needs.
      register(container) {
        contribute(container, REWARD_FUNCTION, {
          id: 'shouting',
          provider: { useFactory: () => ({ score: ({ completions }) => completions.map((c) => (c === c.toUpperCase() ? 1 : 0)) }) },
        });
      },
    });
    const run = scope.createRun({ repetition_n_grams: 1, repetition_max_penalty: -2 });
    const input = { completions: ['A A', 'a b'], prompts: ['', ''], solutions: [undefined, undefined], completionIds: [[1], [2]] };
    expect(await resolveContribution(run, REWARD_FUNCTION, 'shouting').score(input)).toEqual([1, 0]);
    // unigrams of "a a": 1 distinct of 2 -> (1 - 1/2) * -2
    expect(await resolveContribution(run, REWARD_FUNCTION, 'repetition').score(input)).toEqual([-1, -0]);
    expect(() => resolveContribution(run, REWARD_FUNCTION, 'acuracy')).toThrow("No reward function 'acuracy' is installed. Did you mean 'accuracy'?");
  });
});
