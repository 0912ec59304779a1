import { contribute, inject, injectable, readList, RUN_CONFIG, TunekitError, TUNER, z, type DependencyContainer, type OptionGroup, type ResolvedConfig, type TunableModel, type Tuner } from '@tunekit/kernel';

export const name = '@tunekit/plugin-freeze';

const list = (description: string) => z.preprocess(readList, z.array(z.string()).optional()).describe(description);

export const options: OptionGroup[] = [
  {
    group: 'freeze',
    shape: {
      freeze_trainable_layers: z
        .number()
        .int()
        .refine((n) => n !== 0, 'must not be 0')
        .default(2)
        .describe('decoder layers that train in freeze tuning: n > 0 the last n, n < 0 the first -n'),
      freeze_trainable_modules: z
        .preprocess(readList, z.array(z.string()).min(1))
        .default(['all'])
        .describe('modules of those layers that train (e.g. self_attn,mlp), or all'),
      freeze_extra_modules: list('modules outside the decoder layers that also train (e.g. embed_tokens,norm)'),
      freeze_vision_tower: z.boolean().default(true).describe('multimodal models only; tunekit trains text models'),
      freeze_multi_modal_projector: z.boolean().default(true).describe('multimodal models only; tunekit trains text models'),
      freeze_language_model: z.boolean().default(false).describe('multimodal models only; tunekit trains text models'),
    },
    check(config, report) {
      if (config.freeze_language_model === true) {
        report({ key: 'freeze_language_model', message: 'tunekit trains text-only models, so freezing the language model would leave nothing to train. Remove the key.' });
      }
    },
  },
];

const LAYER_INDEX = /\.(\d+)\./;

/**
 * The parameters freeze tuning trains, as LLaMA-Factory selects them: the chosen modules of the last (or first)
 * decoder layers, plus the named modules outside the layers. Errors name the modules one can choose from.
 */
export function freezeTrainable(names: readonly string[], settings: { layers: number; modules: readonly string[]; extra?: readonly string[] }): string[] {
  const layerCount = Math.max(-1, ...names.map((n) => Number(LAYER_INDEX.exec(n)?.[1] ?? -1))) + 1;
  if (layerCount === 0) throw new TunekitError('freeze tuning found no decoder layers (parameters named like model.layers.N.*).');
  const { layers } = settings;
  const layerIds = layers > 0
    ? Array.from({ length: Math.min(layers, layerCount) }, (_, i) => layerCount - Math.min(layers, layerCount) + i)
    : Array.from({ length: Math.min(-layers, layerCount) }, (_, i) => i);
  const layerModules = new Set<string>();
  const outerModules = new Set<string>();
  for (const name of names) {
    const match = LAYER_INDEX.exec(name);
    if (match) layerModules.add(name.slice(match.index + match[0].length).split('.')[0]);
    else {
      const parts = name.split('.');
      outerModules.add(parts[parts.length - 2]);
    }
  }
  const patterns: string[] = [];
  for (const module of settings.modules) {
    if (module !== 'all' && !layerModules.has(module)) {
      throw new TunekitError(`freeze_trainable_modules: the decoder layers have no module '${module}'. Choose from: all, ${[...layerModules].sort().join(', ')}.`);
    }
    for (const id of layerIds) patterns.push(`.${id}.${module === 'all' ? '' : module}`);
  }
  for (const module of settings.extra ?? []) {
    if (!outerModules.has(module)) {
      throw new TunekitError(`freeze_extra_modules: the model has no module '${module}' outside its decoder layers. Choose from: ${[...outerModules].sort().join(', ')}.`);
    }
    patterns.push(module);
  }
  // Substring matching, as LLaMA-Factory does (so an extra module 'norm' also selects the layers' layernorms).
  return names.filter((name) => patterns.some((pattern) => name.includes(pattern)));
}

/** Freeze tuning: only the selected layers' modules train. */
@injectable()
export class FreezeTuner implements Tuner {
  readonly addsAdapters = false;
  constructor(@inject(RUN_CONFIG) private readonly config: ResolvedConfig) {}

  apply(model: TunableModel): void {
    const names = model.parameters().map((p) => p.name);
    const trainable = new Set(
      freezeTrainable(names, {
        layers: Number(this.config.freeze_trainable_layers),
        modules: this.config.freeze_trainable_modules as string[],
        extra: this.config.freeze_extra_modules as string[] | undefined,
      }),
    );
    for (const name of names) model.setTrainable(name, trainable.has(name));
  }
}

/** Full fine-tuning: every parameter trains. */
export class FullTuner implements Tuner {
  readonly addsAdapters = false;
  apply(model: TunableModel): void {
    for (const { name } of model.parameters()) model.setTrainable(name, true);
  }
}

export function register(container: DependencyContainer): void {
  contribute(container, TUNER, { id: 'full', description: 'every parameter trains', provider: { useFactory: () => new FullTuner() } });
  contribute(container, TUNER, {
    id: 'freeze',
    description: 'the last (or first) freeze_trainable_layers decoder layers train; the rest is frozen',
    provider: { useClass: FreezeTuner },
  });
}
