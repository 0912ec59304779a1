import type { DependencyContainer, InjectionToken } from 'tsyringe';
import { TunekitError } from './errors';
import { EXTENSION_POINTS, type ExtensionPoint, type ResolvedConfig } from './extension-points';
import { closest } from './suggest';
import { createToken, resolveToken, type Token } from './token';

type Constructor<T> = new (...args: never[]) => T;

/** How a contribution is built: a class (constructor parameters injected with `@inject(TOKEN)`) or a factory. */
export type ContributionProvider<T> = { useClass: Constructor<T> } | { useFactory: (container: DependencyContainer) => T };

export interface Contribution<T> {
  /** The id users write in YAML. */
  readonly id: string;
  /** One line for `tunekit plugins`. */
  readonly description?: string;
  readonly provider: ContributionProvider<T>;
  /**
   * A switch of the plugin's own keys that selects this contribution in place of the id the point's selecting key
   * names: LLaMA-Factory's `use_galore: true` selects the `galore` optimizer whatever `optim` says (see `selectedId`).
   */
  readonly engagedBy?: (config: ResolvedConfig) => boolean;
}

export interface ContributionInfo {
  readonly point: string;
  readonly id: string;
  readonly plugin: string;
  readonly description?: string;
}

interface Entry extends ContributionInfo {
  readonly provider: ContributionProvider<unknown>;
  readonly engagedBy?: (config: ResolvedConfig) => boolean;
}

/**
 * What has been contributed to which point, by which plugin. Listing reads this table only, so nothing is
 * constructed until a run resolves an id.
 */
export class Registry {
  private readonly entries = new Map<string, Map<string, Entry>>();
  /** The plugin whose `register` is running; contributions are attributed to it. */
  private currentPlugin = '(no plugin)';

  withPlugin<R>(plugin: string, body: () => R): R {
    const previous = this.currentPlugin;
    this.currentPlugin = plugin;
    try {
      return body();
    } finally {
      this.currentPlugin = previous;
    }
  }

  add<T>(point: ExtensionPoint<T>, contribution: Contribution<T>): void {
    if (!/^[A-Za-z0-9_.:-]+$/.test(contribution.id)) {
      throw new TunekitError(`Plugin ${this.currentPlugin} contributes the ${point.title} id '${contribution.id}': ids may only contain letters, digits, '_', '-', '.' and ':'.`);
    }
    const table = this.entries.get(point.name) ?? new Map<string, Entry>();
    this.entries.set(point.name, table);
    const existing = table.get(contribution.id);
    if (existing) {
      throw new TunekitError(
        `Two plugins contribute the ${point.title} '${contribution.id}': ${existing.plugin} and ${this.currentPlugin}. ` +
          `Remove one of them from the config's 'plugins' list or uninstall it.`,
      );
    }
    table.set(contribution.id, {
      point: point.name,
      id: contribution.id,
      plugin: this.currentPlugin,
      description: contribution.description,
      provider: contribution.provider as ContributionProvider<unknown>,
      engagedBy: contribution.engagedBy,
    });
  }

  /** The ids at `point` whose `engagedBy` switch is on in `config`. */
  engaged(point: ExtensionPoint<unknown>, config: ResolvedConfig): string[] {
    return [...(this.entries.get(point.name)?.values() ?? [])].filter((entry) => entry.engagedBy?.(config)).map((entry) => entry.id).sort();
  }

  ids(point: ExtensionPoint<unknown>): string[] {
    return [...(this.entries.get(point.name)?.keys() ?? [])].sort();
  }

  has(point: ExtensionPoint<unknown>, id: string): boolean {
    return this.entries.get(point.name)?.has(id) ?? false;
  }

  info(point: ExtensionPoint<unknown>, id: string): ContributionInfo | undefined {
    const entry = this.entries.get(point.name)?.get(id);
    return entry && { point: entry.point, id: entry.id, plugin: entry.plugin, description: entry.description };
  }

  /** Every contribution, grouped by point in the kernel's order, ids sorted. */
  list(): ContributionInfo[] {
    const result: ContributionInfo[] = [];
    const order = (name: string): number => {
      const index = EXTENSION_POINTS.findIndex((known) => known.name === name);
      return index < 0 ? EXTENSION_POINTS.length : index;
    };
    const points = [...this.entries.keys()].sort((a, b) => order(a) - order(b) || (a < b ? -1 : 1));
    for (const table of points.map((name) => this.entries.get(name)!)) {
      for (const id of [...table.keys()].sort()) {
        const { point, plugin, description } = table.get(id)!;
        result.push({ point, id, plugin, description });
      }
    }
    return result;
  }

  provider(point: ExtensionPoint<unknown>, id: string): ContributionProvider<unknown> | undefined {
    return this.entries.get(point.name)?.get(id)?.provider;
  }
}

export const REGISTRY: Token<Registry> = createToken<Registry>('tunekit:registry');

function contributionToken<T>(point: ExtensionPoint<T>, id: string): Token<T> {
  return createToken<T>(`tunekit:contribution:${point.name}:${id}`);
}

/** The registry of a plugin scope; `container` is the scope or any run container below it. */
export function registryOf(container: DependencyContainer): Registry {
  if (!container.isRegistered(REGISTRY, true)) {
    throw new TunekitError('This container has no tunekit registry: create it with createPluginScope().', 1);
  }
  return resolveToken(container, REGISTRY);
}

/** Contributes an implementation to an extension point under an id. Called from a plugin's `register(container)`. */
export function contribute<T>(container: DependencyContainer, point: ExtensionPoint<T>, contribution: Contribution<T>): void {
  registryOf(container).add(point, contribution);
}

/**
 * The id a run selects at `point`: `configured` (the value of the point's selecting key, e.g. `optim`), unless a
 * contribution's `engagedBy` switch is on in `config`; two switched on at once is an error naming both.
 */
export function selectedId(run: DependencyContainer, point: ExtensionPoint<unknown>, configured: string, config: ResolvedConfig): string {
  const registry = registryOf(run);
  const engaged = registry.engaged(point, config);
  if (engaged.length > 1) {
    const owners = engaged.map((id) => `'${id}' (${registry.info(point, id)!.plugin})`).join(' and ');
    throw new TunekitError(`The config switches on two ${point.title}s at once: ${owners}. Keep one of them.`);
  }
  return engaged[0] ?? configured;
}

/**
 * Builds (once per run container) the contribution selected by `id`. An unknown id is an error that lists the
 * available ids and suggests the closest.
 */
export function resolveContribution<T>(run: DependencyContainer, point: ExtensionPoint<T>, id: string): T {
  const registry = registryOf(run);
  const provider = registry.provider(point, id) as ContributionProvider<T> | undefined;
  if (!provider) {
    const available = registry.ids(point);
    const suggestion = closest(id, available);
    throw new TunekitError(
      `No ${point.title} '${id}' is installed.` +
        (suggestion ? ` Did you mean '${suggestion}'?` : '') +
        (available.length ? ` Available: ${available.join(', ')}.` : ` No plugin contributes a ${point.title}.`),
    );
  }
  const token = contributionToken(point, id);
  if (run.isRegistered(token, false)) return resolveToken(run, token);
  const instance = 'useClass' in provider ? run.resolve(provider.useClass as InjectionToken<T>) : provider.useFactory(run);
  run.register(token, { useValue: instance });
  return instance;
}
