/** Lanes of a link: groups of datasets with their own stream, cursor, priority and cadence. */
import { type Policy, TesseraError, hex64 } from '@tessera/core';
import { type RateLimits } from './cadence.js';
import { type LaneSpec } from './sender.js';

/** One lane as configured. */
export interface LaneConfig {
  readonly id: string;
  readonly datasets: readonly string[];
  readonly priority: number;
  /** Flush every this many ms (staggered per link, ±10% jitter) instead of adaptively. */
  readonly fixedCadenceMs?: number;
  /** The lane's own rate limit on every link, within the link's. */
  readonly limits?: RateLimits;
}

/** Lane ids: `main` or `[a-z0-9-]`, at most 32 characters. */
export const laneIdPattern = /^[a-z0-9][a-z0-9-]{0,31}$/;
/** Lane priorities: high, normal (the main lane), low. */
export const lanePriorities = { high: 0, normal: 1, low: 2 } as const;
/** Lanes per link. */
export const lanesMax = 16;

/** Builds the lanes of every link: the configured ones plus `main` for every other dataset. */
export function buildLanes(configs: readonly LaneConfig[], mainCadenceMs: number | undefined): Array<{ spec: LaneSpec; fixedCadenceMs?: number }> {
  if (configs.length > lanesMax - 1) throw new TesseraError('ERR_OPTION_INVALID', `${configs.length} lanes exceed the limit of ${lanesMax - 1}`);
  const named = new Set<string>();
  const ids = new Set<string>(['main']);
  const lanes: Array<{ spec: LaneSpec; fixedCadenceMs?: number }> = [];
  for (const config of configs) {
    if (!laneIdPattern.test(config.id) || ids.has(config.id)) {
      throw new TesseraError(
        'ERR_OPTION_INVALID',
        `lane id ${JSON.stringify(config.id)} is invalid or repeated (use [a-z0-9-], at most 32 characters; "main" is reserved)`,
      );
    }
    ids.add(config.id);
    for (const dataset of config.datasets) {
      if (named.has(dataset)) throw new TesseraError('ERR_OPTION_INVALID', `dataset ${JSON.stringify(dataset)} is in two lanes`);
      named.add(dataset);
    }
    lanes.push({
      spec: {
        id: config.id,
        datasets: new Set(config.datasets),
        excluded: new Set(),
        priority: config.priority,
        ...(config.limits === undefined ? {} : { limits: config.limits }),
      },
      fixedCadenceMs: config.fixedCadenceMs,
    });
  }
  // Datasets without a lane of their own have normal priority.
  lanes.push({ spec: { id: 'main', datasets: null, excluded: named, priority: lanePriorities.normal }, fixedCadenceMs: mainCadenceMs });
  return lanes;
}

/**
 * Lanes from the policy's datasets: datasets of the same priority and cadence share a lane, named by them
 * (`high`, `low-30000ms`), so a lane keeps its name — and its durable cursors — across policy versions;
 * adaptive datasets of normal priority stay in the main lane. A dataset with its own rate limit gets a lane
 * of its own (`rate-<digest of its name>`), so that its limit binds it alone.
 */
export function lanesOfPolicy(policy: Policy | null): LaneConfig[] {
  const groups = new Map<string, LaneConfig & { datasets: string[] }>();
  for (const dataset of [...(policy?.datasets.values() ?? [])].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (dataset.priority === 'normal' && dataset.cadenceMs === null && dataset.rate === null) continue;
    const cadence = dataset.cadenceMs === null ? {} : { fixedCadenceMs: dataset.cadenceMs };
    if (dataset.rate !== null) {
      const id = `rate-${hex64(dataset.name)}`;
      groups.set(id, { id, datasets: [dataset.name], priority: lanePriorities[dataset.priority], ...cadence, limits: dataset.rate });
      continue;
    }
    const id = `${dataset.priority}${dataset.cadenceMs === null ? '' : `-${dataset.cadenceMs}ms`}`;
    const lane = groups.get(id) ?? { id, datasets: [], priority: lanePriorities[dataset.priority], ...cadence };
    lane.datasets.push(dataset.name);
    groups.set(id, lane);
  }
  return [...groups.values()];
}
