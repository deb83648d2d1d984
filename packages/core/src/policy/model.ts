/**
 * The replication policy as data: regions, datasets with their placement, rules. `parsePolicy` (parse.ts)
 * builds it from YAML or JSON text; `Policy` (policy.ts) decides with it.
 */
import { assert } from '../assert.js';
import { type CrdtTypeName } from '../crdt/type.js';

/** A region of the cluster as the policy declares it. */
export interface RegionSpec {
  readonly name: string;
  /** `[a-z0-9-]{1,32}`: regions of one jurisdiction share residency rules (`within: jurisdiction`). */
  readonly jurisdiction: string;
  /** Latitude and longitude in degrees, for routing; null when the policy does not give one. */
  readonly location: readonly [number, number] | null;
}

/** Where a dataset's documents may live, before rules and quarantine. */
export type Placement =
  /** Every region. */
  | { readonly kind: 'global' }
  /** Only the document's origin region; rules are not consulted. */
  | { readonly kind: 'local' }
  /** Only these regions (sorted). */
  | { readonly kind: 'regions'; readonly regions: readonly string[] }
  /**
   * The region a CEL expression computes from the document (`home`), plus: every region of the home's
   * jurisdiction (`within: 'jurisdiction'`), these regions (a list, sorted), or nothing more (null).
   */
  | { readonly kind: 'home'; readonly home: string; readonly within: 'jurisdiction' | readonly string[] | null }
  /** No region (`unlisted: refuse` for a dataset the policy does not list). */
  | { readonly kind: 'refuse' };

/** What a policy does with a dataset it does not list. */
export const unlistedPlacements = ['global', 'local', 'refuse'] as const;
/** What a policy does with a dataset it does not list. */
export type UnlistedPlacement = (typeof unlistedPlacements)[number];

/** Dataset priorities on a constrained link. */
export const datasetPriorities = ['high', 'normal', 'low'] as const;
/** A dataset's priority on a constrained link. */
export type DatasetPriority = (typeof datasetPriorities)[number];

/** Bounds of a dataset's fixed cadence. */
export const cadenceMsMin = 10;
export const cadenceMsMax = 3_600_000;

/** A dataset's rate limit per link; null where the policy sets none. */
export interface DatasetRate {
  readonly bytesPerSecondMax: number | null;
  readonly entriesPerSecondMax: number | null;
}

/** A dataset's settings from the policy. */
export interface DatasetPolicy {
  readonly name: string;
  /** False for the default a policy applies to datasets it does not list (`unlisted`). */
  readonly listed: boolean;
  /** The CRDT type of new documents (default map). */
  readonly type: CrdtTypeName;
  readonly placement: Placement;
  /** Priority on a constrained link (default normal). */
  readonly priority: DatasetPriority;
  /** A fixed flush cadence in ms instead of the adaptive one; null = adaptive. */
  readonly cadenceMs: number | null;
  /** Rate limit per link; null = the link's own. */
  readonly rate: DatasetRate | null;
}

/** The effects a rule can have. */
export const ruleEffects = ['allow', 'deny', 'release'] as const;
/** What a rule does when its expression is true. */
export type RuleEffect = (typeof ruleEffects)[number];

/** A named rule: a CEL expression over `doc`, `source` and `target` that returns bool. */
export interface PolicyRule {
  readonly name: string;
  readonly effect: RuleEffect;
  readonly expression: string;
}

/** A validated policy as plain data: the normal form from which the canonical text is written. */
export interface PolicySpec {
  readonly version: number;
  readonly unlisted: UnlistedPlacement;
  /** In the order of the policy text. */
  readonly regions: readonly RegionSpec[];
  /** In the order of the policy text. */
  readonly datasets: readonly DatasetPolicy[];
  /** In the order of the policy text (the first matching rule names a decision's reason). */
  readonly rules: readonly PolicyRule[];
}

/** Parses a duration such as `250ms`, `30s`, `5m` or `1h` into milliseconds; null when malformed. */
export function parseDurationMs(text: string): number | null {
  const match = /^(\d{1,7})(ms|s|m|h)$/.exec(text);
  if (match === null) return null;
  const factor = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'm' | 'h'];
  return Number(match[1]) * factor;
}

/** Formats milliseconds in the largest unit that divides them: 30000 → `30s`; the inverse of `parseDurationMs`. */
export function formatDurationMs(ms: number): string {
  if (ms > 0 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms > 0 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms > 0 && ms % 1_000 === 0) return `${ms / 1_000}s`;
  return `${ms}ms`;
}

/** The canonical document of a spec: the policy text format with every default written out, sets sorted. */
export function canonicalDocument(spec: PolicySpec): unknown {
  const regions: Record<string, unknown> = {};
  for (const region of spec.regions) {
    regions[region.name] =
      region.location === null ? { jurisdiction: region.jurisdiction } : { jurisdiction: region.jurisdiction, location: [...region.location] };
  }
  const datasets: Record<string, unknown> = {};
  for (const dataset of spec.datasets) {
    const settings: Record<string, unknown> = { type: dataset.type, placement: canonicalPlacement(dataset.placement), priority: dataset.priority };
    if (dataset.cadenceMs !== null) settings.cadence = formatDurationMs(dataset.cadenceMs);
    if (dataset.rate !== null) {
      const rate: Record<string, number> = {};
      if (dataset.rate.bytesPerSecondMax !== null) rate.bytesPerSecond = dataset.rate.bytesPerSecondMax;
      if (dataset.rate.entriesPerSecondMax !== null) rate.entriesPerSecond = dataset.rate.entriesPerSecondMax;
      settings.rate = rate;
    }
    datasets[dataset.name] = settings;
  }
  return {
    version: spec.version,
    unlisted: spec.unlisted,
    regions,
    datasets,
    rules: spec.rules.map((rule) => ({ name: rule.name, [rule.effect]: rule.expression })),
  };
}

function canonicalPlacement(placement: Placement): unknown {
  switch (placement.kind) {
    case 'global':
    case 'local':
      return placement.kind;
    case 'regions':
      return { regions: [...placement.regions] };
    case 'home':
      return placement.within === null ? { home: placement.home } : { home: placement.home, within: placement.within };
    case 'refuse':
      return assert(false, 'a listed dataset has no refuse placement');
  }
}

/** JSON with object keys sorted at every level (arrays keep their order); the text a policy's hash is taken of. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const record = value as Record<string, unknown>;
    return `{${Object.keys(record)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}
