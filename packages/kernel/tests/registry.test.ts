import { z } from 'zod';
import {
  contribute,
  inject,
  injectable,
  LR_SCHEDULER,
  PluginScope,
  resolveContribution,
  RUN_CONFIG,
  selectedId,
  TUNER,
  type LrSchedulerFactory,
  type ResolvedConfig,
  type TunekitPlugin,
} from '../src';

function constantSchedulers(ids: string[], built: string[]): TunekitPlugin {
  return {
    name: '@test/schedulers',
    options: [{ group: 'test', shape: { warm_factor: z.number().default(1) } }],
    register(container) {
      for (const id of ids) {
        contribute(container, LR_SCHEDULER, {
          id,
          description: `constant ${id}`,
          provider: {
            useFactory: (): LrSchedulerFactory => {
              built.push(id);
              return { create: () => ({ multiplier: () => 1 }) };
            },
          },
        });
      }
    },
  };
}

describe('contribution and resolution by id', () => {
  it('resolves the contribution a run selects, building it once per run', () => {
    const built: string[] = [];
    const scope = new PluginScope();
    scope.load(constantSchedulers(['flat', 'steady'], built));
    const run = scope.createRun({});
    const first = resolveContribution(run, LR_SCHEDULER, 'flat');
    expect(first.create({ totalSteps: 10, warmupSteps: 0, baseLr: 1, kwargs: {} }).multiplier(3)).toBe(1);
    expect(resolveContribution(run, LR_SCHEDULER, 'flat')).toBe(first);
    expect(built).toEqual(['flat']);
    const otherRun = scope.createRun({});
    expect(resolveContribution(otherRun, LR_SCHEDULER, 'flat')).not.toBe(first);
    expect(built).toEqual(['flat', 'flat']);
  });

  it('lists ids and plugins without constructing anything', () => {
    const built: string[] = [];
    const scope = new PluginScope();
    scope.load(constantSchedulers(['flat', 'steady'], built));
    expect(scope.registry.ids(LR_SCHEDULER)).toEqual(['flat', 'steady']);
    expect(scope.registry.list()).toEqual([
      { point: 'lr-scheduler', id: 'flat', plugin: '@test/schedulers', description: 'constant flat' },
      { point: 'lr-scheduler', id: 'steady', plugin: '@test/schedulers', description: 'constant steady' },
    ]);
    expect(built).toEqual([]);
  });

  it('injects the run config into class contributions', () => {
    @injectable()
    class RankTuner {
      readonly addsAdapters = true;
      constructor(@inject(RUN_CONFIG) readonly config: ResolvedConfig) {}
      apply(): void {}
    }
    const scope = new PluginScope();
    scope.load({ name: '@test/tuner', register: (container) => contribute(container, TUNER, { id: 'ranked', provider: { useClass: RankTuner } }) });
    const tuner = resolveContribution(scope.createRun({ rank: 8 }), TUNER, 'ranked') as RankTuner;
    expect(tuner.config).toEqual({ rank: 8 });
  });

  it('names both plugins when two contribute the same id to the same point', () => {
    const scope = new PluginScope();
    scope.load(constantSchedulers(['flat'], []));
    const twin = { ...constantSchedulers(['flat'], []), name: '@other/schedulers' };
    expect(() => scope.load(twin)).toThrow(/lr-scheduler|learning-rate scheduler 'flat': @test\/schedulers and @other\/schedulers/);
  });

  it('allows the same id at different points', () => {
    const scope = new PluginScope();
    scope.load(constantSchedulers(['flat'], []));
    scope.load({ name: '@test/tuner', register: (c) => contribute(c, TUNER, { id: 'flat', provider: { useFactory: () => ({ addsAdapters: false, apply() {} }) } }) });
    expect(scope.registry.ids(TUNER)).toEqual(['flat']);
  });

  it('suggests the closest id for an unknown one and lists what is available', () => {
    const scope = new PluginScope();
    scope.load(constantSchedulers(['cosine', 'linear'], []));
    expect(() => resolveContribution(scope.createRun({}), LR_SCHEDULER, 'cosin')).toThrow(
      "No learning-rate scheduler 'cosin' is installed. Did you mean 'cosine'? Available: cosine, linear.",
    );
  });

  it('rejects a plugin loaded twice and a module that is not a plugin', () => {
    const scope = new PluginScope();
    scope.load(constantSchedulers(['flat'], []), '/a');
    expect(() => scope.load(constantSchedulers(['x'], []), '/b')).toThrow('Plugin @test/schedulers is loaded twice: from /a and from /b');
    expect(() => scope.load({ name: 'broken' } as unknown as TunekitPlugin, '/c')).toThrow(/register\(container\)/);
  });

  it('never registers into tsyringe\'s global container', () => {
    const { container } = jest.requireActual<typeof import('tsyringe')>('tsyringe');
    const scope = new PluginScope();
    scope.load(constantSchedulers(['flat'], []));
    resolveContribution(scope.createRun({}), LR_SCHEDULER, 'flat');
    expect(container.isRegistered(RUN_CONFIG, true)).toBe(false);
  });
});

describe('contributions engaged by a switch', () => {
  const plugin = (name: string, id: string, key: string): TunekitPlugin => ({
    name,
    options: [{ group: name, shape: { [key]: z.boolean().default(false) } }],
    register(container) {
      contribute(container, LR_SCHEDULER, { id, engagedBy: (config) => config[key] === true, provider: { useFactory: (): LrSchedulerFactory => ({ create: () => ({ multiplier: () => 0.5 }) }) } });
    },
  });

  it('take the place of the configured id when their switch is on, and name both when two are', () => {
    const scope = new PluginScope();
    scope.load(constantSchedulers(['linear'], []));
    scope.load(plugin('@test/a', 'switched_a', 'use_a'));
    scope.load(plugin('@test/b', 'switched_b', 'use_b'));
    const select = (config: ResolvedConfig) => selectedId(scope.createRun(config), LR_SCHEDULER, 'linear', config);
    expect(select({})).toBe('linear');
    expect(select({ use_a: true })).toBe('switched_a');
    expect(() => select({ use_a: true, use_b: true })).toThrow("The config switches on two learning-rate schedulers at once: 'switched_a' (@test/a) and 'switched_b' (@test/b). Keep one of them.");
  });
});
