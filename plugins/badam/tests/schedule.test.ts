import { composeSchema, PluginScope } from '@tunekit/kernel';
import * as plugin from '../src';
import { BlockSchedule, layerBlocks, type BlockScheduleSettings } from '../src';

const schedule = (blocks: number, settings: Partial<BlockScheduleSettings>) =>
  new BlockSchedule(blocks, { switchMode: 'ascending', switchInterval: 3, seed: 1, ...settings });
/** The (block, since) of steps 1..n. */
const steps = (s: BlockSchedule, n: number) => Array.from({ length: n }, (_, i) => s.at(i + 1));
const blocksOf = (s: BlockSchedule, n: number) => steps(s, n).map((a) => a.block);

describe("BAdam's block order", () => {
  it('switches after every step k with (k + 1) % interval == 0, as BlockOptimizer does', () => {
    // Interval 3: block 0 trains steps 1-2, then each block 3 steps, from steps 3, 6, 9, 12.
    const s = schedule(4, { switchMode: 'ascending' });
    expect(blocksOf(s, 14)).toEqual([0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 0, 0, 0]);
    expect(steps(s, 7).map((a) => a.since)).toEqual([1, 1, 3, 3, 3, 6, 6]);
    // Interval 1 switches after every step.
    expect(blocksOf(schedule(3, { switchInterval: 1 }), 5)).toEqual([0, 1, 2, 0, 1]);
    expect(steps(schedule(3, { switchInterval: 1 }), 3).map((a) => a.since)).toEqual([1, 2, 3]);
  });

  it('follows each switch mode', () => {
    expect(blocksOf(schedule(4, { switchMode: 'descending' }), 12)).toEqual([3, 3, 2, 2, 2, 1, 1, 1, 0, 0, 0, 3]);
    expect(blocksOf(schedule(4, { switchMode: 'ascending', startBlock: 2 }), 9)).toEqual([2, 2, 3, 3, 3, 0, 0, 0, 1]);
    expect(blocksOf(schedule(4, { switchMode: 'descending', startBlock: 1 }), 6)).toEqual([1, 1, 0, 0, 0, 3]);
    // fixed keeps its block, but each interval still restarts the optimizer state (a new `since`).
    const fixed = schedule(4, { switchMode: 'fixed', startBlock: 2 });
    expect(blocksOf(fixed, 7)).toEqual([2, 2, 2, 2, 2, 2, 2]);
    expect(steps(fixed, 7).map((a) => a.since)).toEqual([1, 1, 3, 3, 3, 6, 6]);
    // -1 never switches.
    expect(steps(schedule(4, { switchInterval: -1 }), 200).every((a) => a.block === 0 && a.since === 1)).toBe(true);
  });

  it('visits every block once per round in random mode, reshuffling each round, the same way for the same seed', () => {
    const random = schedule(5, { switchMode: 'random', switchInterval: 1, seed: 7 });
    const order = blocksOf(random, 15);
    for (let round = 0; round < 3; round++) expect([...order.slice(5 * round, 5 * round + 5)].sort()).toEqual([0, 1, 2, 3, 4]);
    expect(order.slice(0, 5)).not.toEqual(order.slice(5, 10));
    expect(blocksOf(schedule(5, { switchMode: 'random', switchInterval: 1, seed: 7 }), 15)).toEqual(order);
    expect(blocksOf(schedule(5, { switchMode: 'random', switchInterval: 1, seed: 8 }), 15)).not.toEqual(order);
    // Asked out of order (a resumed run), it answers the same.
    const late = schedule(5, { switchMode: 'random', switchInterval: 1, seed: 7 });
    expect(late.at(12).block).toBe(order[11]);
  });

  it('makes one block per decoder layer and leaves embeddings, the final norm and lm_head out', () => {
    const names = ['model.embed_tokens.weight', 'model.layers.0.self_attn.q_proj.weight', 'model.layers.0.mlp.up_proj.weight', 'model.layers.1.input_layernorm.weight', 'model.layers.10.mlp.down_proj.weight', 'model.norm.weight', 'lm_head.weight'];
    expect(layerBlocks(names.map((name) => ({ name, shape: [2, 2] })))).toEqual([
      { prefix: 'model.layers.0.', names: ['model.layers.0.self_attn.q_proj.weight', 'model.layers.0.mlp.up_proj.weight'] },
      { prefix: 'model.layers.1.', names: ['model.layers.1.input_layernorm.weight'] },
      { prefix: 'model.layers.10.', names: ['model.layers.10.mlp.down_proj.weight'] },
    ]);
    expect(() => schedule(4, { startBlock: 4 })).toThrow(/badam_start_block 4 is out of range: the model has 4 blocks/);
  });
});

describe('the BAdam keys', () => {
  const scope = new PluginScope();
  scope.load(plugin);
  const schema = composeSchema(scope);
  const validate = (raw: Record<string, unknown>) => schema.validate({ model_name_or_path: 'm', ...raw }, scope.registry, { points: [] });
  const messages = (raw: Record<string, unknown>) => validate(raw).issues.map((issue) => `${issue.key}: ${issue.message}`);

  it('has LLaMA-Factory defaults', () => {
    const result = validate({ use_badam: true, finetuning_type: 'full' });
    expect(result.issues).toEqual([]);
    if (result.ok) {
      expect(result.config).toMatchObject({ badam_mode: 'layer', badam_switch_mode: 'ascending', badam_switch_interval: 50, badam_update_ratio: 0.05, badam_mask_mode: 'adjacent', badam_verbose: 0 });
    }
  });

  it('refuses what LLaMA-Factory refuses, naming the key', () => {
    expect(messages({ use_badam: true, finetuning_type: 'lora' })).toEqual([expect.stringMatching(/^use_badam: .*finetuning_type is lora: set finetuning_type: full/)]);
    expect(messages({ use_badam: true, finetuning_type: 'full', badam_mode: 'ratio', badam_update_ratio: 0 })).toEqual([expect.stringMatching(/^badam_update_ratio: /)]);
    expect(messages({ use_badam: true, finetuning_type: 'full', badam_switch_interval: 0 })).toEqual([expect.stringMatching(/^badam_switch_interval: .*-1 to never switch/)]);
    expect(messages({ use_badam: true, finetuning_type: 'full', badam_switch_mode: 'sideways' })).toEqual([expect.stringMatching(/^badam_switch_mode: /)]);
  });
});
