/**
 * Decisions: may region R hold document D under this policy? This is the hot path — the sender asks for every
 * delta and every peer, the receiver again for every delta it receives — so expressions are compiled once and
 * decisions are cached by everything they can depend on: dataset, origin, the tag set, the target region, and
 * the key only for datasets whose expressions read `doc.key`.
 *
 * Semantics (docs/policy.md):
 *   base      = global: every region | regions: the list | home: {home} ∪ within | local: {origin}
 *   allowed   = (target ∈ base || some allow rule matches) && no deny rule matches     (deny beats allow)
 *   quarantine: a document tagged `quarantine` stays in its origin unless a release rule matches
 * `local` datasets never leave the origin and consult no rule. Everything unknown fails closed: a target or
 * origin that is not a region of the policy, a home that is not one, an expression that fails at run time.
 */
import { assert } from '../assert.js';
import { TesseraError } from '../errors.js';
import { decisionCacheEntriesMax } from '../limits.js';
import { checkDatasetName, checkKey, checkTag } from '../names.js';
import { CelDocument, CelNewDocument, CelRegion, type CompiledExpression, type ExpressionKind, compileExpression, isCompiled } from './cel.js';
import { type DocFacts, normalizeTags, quarantineTag } from './facts.js';
import {
  type DatasetPolicy,
  type Placement,
  type PolicyRule,
  type PolicySpec,
  type RegionSpec,
  type UnlistedPlacement,
  canonicalDocument,
  canonicalJson,
} from './model.js';

/** Why a decision came out as it did. */
export type DecisionReason =
  /** The dataset's placement includes (allow) or excludes (deny) the target, and no rule changed that. */
  | 'placement'
  /** An allow rule let the target hold it, or a deny rule forbade it (`rule` names it). */
  | 'rule'
  /** Tagged `quarantine`, no release rule matched: only the origin may hold it. */
  | 'quarantine'
  /** A `local` dataset: only the origin may hold it. */
  | 'local'
  /** The target, the origin or the computed home is not a region of the policy. */
  | 'unknown-region'
  /** The policy does not list the dataset and refuses unlisted datasets. */
  | 'refused-dataset'
  /** An expression failed at run time (`rule` names the rule; none for a home expression): denied. */
  | 'error';

/** A decision for one (document, target region). Decisions are frozen and shared. */
export interface Decision {
  readonly allow: boolean;
  readonly reason: DecisionReason;
  /** The rule that decided (`rule`) or failed (`error`). */
  readonly rule?: string;
  /** For `unknown-region` and `error`: what was unknown or failed (never the document's key or tags). */
  readonly detail?: string;
}

interface CompiledRule {
  readonly name: string;
  readonly expression: CompiledExpression;
  readonly allowDecision: Decision;
  readonly denyDecision: Decision;
}

/** A dataset's placement, prepared for decisions. */
interface DatasetRuntime {
  readonly policy: DatasetPolicy;
  /** Numbers the runtimes, for cache slots. */
  readonly index: number;
  /** The fixed base for `global` and `regions`. */
  readonly base: ReadonlySet<string> | null;
  readonly home: CompiledExpression | null;
  readonly within: 'jurisdiction' | ReadonlySet<string> | null;
  /** Decisions depend on the key: the home expression or a rule reads `doc.key`. */
  readonly readsKey: boolean;
}

const decisions = {
  placementAllow: decision(true, 'placement'),
  placementDeny: decision(false, 'placement'),
  localAllow: decision(true, 'local'),
  localDeny: decision(false, 'local'),
  quarantine: decision(false, 'quarantine'),
  refused: decision(false, 'refused-dataset'),
} as const;

function decision(allow: boolean, reason: DecisionReason, rule?: string, detail?: string): Decision {
  return Object.freeze({ allow, reason, ...(rule === undefined ? {} : { rule }), ...(detail === undefined ? {} : { detail }) });
}

const datasetNamePattern = /^[a-z][a-z0-9_-]*$/;

/**
 * A validated, immutable replication policy (build one with `parsePolicy`). Its decision cache is the only
 * state it changes, and that never changes an answer.
 */
export class Policy {
  readonly version: number;
  /** What the policy does with datasets it does not list. */
  readonly unlisted: UnlistedPlacement;
  /** The regions, in the order of the policy text. */
  readonly regions: ReadonlyMap<string, RegionSpec>;
  /** The region names, sorted. */
  readonly regionNames: readonly string[];
  /** The listed datasets, in the order of the policy text. */
  readonly datasets: ReadonlyMap<string, DatasetPolicy>;
  /** The rules, in the order of the policy text. */
  readonly rules: readonly PolicyRule[];
  /** Canonical JSON of the normalized policy (sorted keys, defaults written out); itself a valid policy text. */
  readonly canonical: string;
  /** The text the policy was parsed from, as given. */
  readonly text: string;
  /** What the text was called (a file name) in messages. */
  readonly source: string;

  private readonly celRegions = new Map<string, CelRegion>();
  private readonly runtimes = new Map<string, DatasetRuntime>();
  private readonly unlistedRuntime: DatasetRuntime;
  private readonly denyRules: readonly CompiledRule[];
  private readonly allowRules: readonly CompiledRule[];
  private readonly releaseRules: readonly CompiledRule[];
  private readonly regionIndexes = new Map<string, number>();
  /**
   * The decision cache, in two generations: a slot per (dataset, origin, target) holds decisions by tag set
   * (and key). When the young generation fills, it becomes the old one and the old one is dropped; a hit in
   * the old generation moves the decision back to the young one.
   */
  private cacheYoung = new Map<number, Map<string, Decision>>();
  private cacheOld = new Map<number, Map<string, Decision>>();
  private cacheYoungSize = 0;
  private cacheOldSize = 0;

  /** Use `parsePolicy`: it validates `spec` and reports every problem; this constructor asserts. */
  constructor(spec: PolicySpec, text: string, source: string) {
    this.version = spec.version;
    this.unlisted = spec.unlisted;
    this.text = text;
    this.source = source;
    this.regions = new Map(spec.regions.map((region) => [region.name, region]));
    this.regionNames = Object.freeze([...this.regions.keys()].sort());
    this.regionNames.forEach((name, i) => this.regionIndexes.set(name, i));
    for (const region of spec.regions) {
      this.celRegions.set(region.name, new CelRegion(region.name, region.jurisdiction, region.location ?? []));
    }
    this.datasets = new Map(spec.datasets.map((dataset) => [dataset.name, dataset]));
    this.rules = spec.rules;
    const compiled = spec.rules.map((rule) => ({ rule, compiled: this.compile(rule.expression, 'rule', `rule "${rule.name}"`) }));
    const rulesOf = (effect: PolicyRule['effect']): CompiledRule[] =>
      compiled
        .filter(({ rule }) => rule.effect === effect)
        .map(({ rule, compiled }) => ({
          name: rule.name,
          expression: compiled,
          allowDecision: decision(true, 'rule', rule.name),
          denyDecision: decision(false, 'rule', rule.name),
        }));
    this.denyRules = rulesOf('deny');
    this.allowRules = rulesOf('allow');
    this.releaseRules = rulesOf('release');
    const rulesReadKey = compiled.some(({ compiled }) => compiled.readsKey);
    for (const dataset of spec.datasets) {
      assert(dataset.listed, `dataset ${dataset.name} of the spec is listed`);
      this.runtimes.set(dataset.name, this.runtimeOf(dataset, this.runtimes.size, rulesReadKey));
    }
    this.unlistedRuntime = this.runtimeOf(this.unlistedPolicy(''), this.runtimes.size, rulesReadKey);
    this.canonical = canonicalJson(canonicalDocument(spec));
    Object.freeze(this.rules);
  }

  /** The dataset's settings: the listed ones, or the `unlisted` default (type map, priority normal). */
  dataset(name: string): DatasetPolicy {
    return this.datasets.get(name) ?? this.unlistedPolicy(name);
  }

  /** True when `region` may hold the document. */
  mayHold(doc: DocFacts, region: string): boolean {
    return this.decide(doc, region).allow;
  }

  /**
   * Whether `region` may hold the document, and why. Cached. `doc` must hold valid names (the store checks
   * them); a cache miss checks them again and throws the name's `ERR_*_INVALID`.
   */
  decide(doc: DocFacts, region: string): Decision {
    const targetIndex = this.regionIndexes.get(region);
    if (targetIndex === undefined) return this.unknownTarget(region);
    const runtime = this.runtimes.get(doc.dataset) ?? this.unlistedRuntimeFor(doc.dataset);
    const placement = runtime.policy.placement.kind;
    if (placement === 'refuse') return decisions.refused;
    const origin = doc.origin;
    const originIndex = origin === null ? undefined : this.regionIndexes.get(origin);
    if (originIndex === undefined) return this.unknownOrigin(origin);
    if (placement === 'local') return region === origin ? decisions.localAllow : decisions.localDeny;
    // The slot fixes dataset (listed ones), origin and target; the key within it is the tag set, then the
    // dataset name for unlisted datasets (they share a runtime, and rules can read the name), then the key
    // where an expression reads it. Names are valid, so none holds the separators (\0, \u0001, \u0002).
    const tags = normalizeTags(doc.tags);
    let cacheKey = tags.length === 0 ? '' : tags.length === 1 ? tags[0]! : tags.join('\u0000');
    if (!runtime.policy.listed) cacheKey = `${cacheKey}\u0002${doc.dataset}`;
    if (runtime.readsKey) cacheKey = `${cacheKey}\u0001${doc.key}`;
    const regionsCount = this.regionNames.length;
    const slot = (runtime.index * regionsCount + originIndex) * regionsCount + targetIndex;
    const young = this.cacheYoung.get(slot);
    let found = young?.get(cacheKey);
    if (found !== undefined) return found;
    found = this.cacheOld.get(slot)?.get(cacheKey);
    if (found === undefined) found = this.evaluate(runtime, doc, tags, origin!, this.celRegions.get(region)!);
    this.remember(slot, cacheKey, found);
    return found;
  }

  /** `decide` without the cache: the reference the cache is tested against, and the benchmark's slow path. */
  decideUncached(doc: DocFacts, region: string): Decision {
    const target = this.celRegions.get(region);
    if (target === undefined) return this.unknownTarget(region);
    const runtime = this.runtimes.get(doc.dataset) ?? this.unlistedRuntimeFor(doc.dataset);
    if (runtime.policy.placement.kind === 'refuse') return decisions.refused;
    const origin = doc.origin;
    if (origin === null || !this.celRegions.has(origin)) return this.unknownOrigin(origin);
    if (runtime.policy.placement.kind === 'local') return region === origin ? decisions.localAllow : decisions.localDeny;
    return this.evaluate(runtime, doc, normalizeTags(doc.tags), origin, target);
  }

  /** The regions that may hold the document, sorted. */
  holders(doc: DocFacts): string[] {
    const out: string[] = [];
    for (const region of this.regionNames) if (this.decide(doc, region).allow) out.push(region);
    return out;
  }

  /** The document's home region for a `home` placement; null for other placements or when it has none. */
  home(doc: DocFacts): string | null {
    const runtime = this.runtimes.get(doc.dataset);
    if (runtime?.home == null || doc.origin === null) return null;
    const source = this.celRegions.get(doc.origin);
    if (source === undefined) return null;
    const home = this.homeOf(runtime, doc, normalizeTags(doc.tags), doc.origin, source);
    return typeof home === 'string' ? home : null;
  }

  /** Decisions in the cache (at most `decisionCacheEntriesMax`). */
  get decisionCacheSize(): number {
    return this.cacheYoungSize + this.cacheOldSize;
  }

  private remember(slot: number, cacheKey: string, found: Decision): void {
    if (this.cacheYoungSize >= decisionCacheEntriesMax / 2) {
      this.cacheOld = this.cacheYoung;
      this.cacheOldSize = this.cacheYoungSize;
      this.cacheYoung = new Map();
      this.cacheYoungSize = 0;
    }
    let young = this.cacheYoung.get(slot);
    if (young === undefined) {
      young = new Map();
      this.cacheYoung.set(slot, young);
    }
    young.set(cacheKey, found);
    this.cacheYoungSize++;
  }

  // ---------------------------------------------------------------- evaluation

  private evaluate(runtime: DatasetRuntime, doc: DocFacts, tags: readonly string[], origin: string, target: CelRegion): Decision {
    checkFacts(doc, tags, runtime.readsKey);
    const source = this.celRegions.get(origin)!;
    const placement = runtime.policy.placement;
    let inBase: boolean;
    let home = '';
    if (placement.kind === 'home') {
      const computed = this.homeOf(runtime, doc, tags, origin, source);
      if (typeof computed !== 'string') return computed;
      home = computed;
      const within = runtime.within;
      inBase =
        target.name === home ||
        // biome-ignore lint/complexity/useOptionalChain: a boolean, never undefined
        (within === 'jurisdiction' ? this.celRegions.get(home)!.jurisdiction === target.jurisdiction : within !== null && within.has(target.name));
    } else {
      assert(runtime.base !== null, `dataset ${runtime.policy.name} has a fixed base`);
      inBase = runtime.base.has(target.name);
    }
    const context = { doc: new CelDocument(doc.dataset, doc.key, tags, origin, home), source, target };
    for (const rule of this.denyRules) {
      const matched = runRule(rule, context);
      if (matched === true) return rule.denyDecision;
      if (matched !== false) return matched;
    }
    let allowed: Decision = decisions.placementAllow;
    if (!inBase) {
      let failed: Decision | null = null;
      let matchedRule: CompiledRule | null = null;
      for (const rule of this.allowRules) {
        const matched = runRule(rule, context);
        if (matched === true) {
          matchedRule = rule;
          break;
        }
        if (matched !== false) failed ??= matched;
      }
      if (matchedRule === null) return failed ?? decisions.placementDeny;
      allowed = matchedRule.allowDecision;
    }
    if (target.name !== origin && tags.includes(quarantineTag)) {
      let failed: Decision | null = null;
      for (const rule of this.releaseRules) {
        const matched = runRule(rule, context);
        if (matched === true) return allowed;
        if (matched !== false) failed ??= matched;
      }
      return failed ?? decisions.quarantine;
    }
    return allowed;
  }

  /** The home region, or the decision that denies (the expression failed, or named no region of the policy). */
  private homeOf(runtime: DatasetRuntime, doc: DocFacts, tags: readonly string[], origin: string, source: CelRegion): string | Decision {
    const expression = runtime.home!;
    let home: unknown;
    try {
      home = expression.run({ doc: new CelNewDocument(doc.dataset, doc.key, tags, origin), source });
    } catch (error) {
      return decision(false, 'error', undefined, `the home expression of dataset ${runtime.policy.name}: ${celFailure(error)}`);
    }
    if (typeof home !== 'string') {
      return decision(false, 'error', undefined, `the home expression of dataset ${runtime.policy.name} returned a ${typeof home}, not a string`);
    }
    if (!this.celRegions.has(home)) {
      // A region-shaped name is shown; anything else may come from the key, and is not.
      const shown = /^[a-z][a-z0-9_-]{0,63}$/.test(home) ? `"${home}"` : 'a value that';
      return decision(false, 'unknown-region', undefined, `the home of dataset ${runtime.policy.name}, ${shown} is not a region of policy v${this.version}`);
    }
    return home;
  }

  private unknownTarget(region: string): Decision {
    return decision(false, 'unknown-region', undefined, `target ${describeRegion(region)} is not a region of policy v${this.version}`);
  }

  private unknownOrigin(origin: string | null): Decision {
    return decision(
      false,
      'unknown-region',
      undefined,
      origin === null ? 'the document has no origin region' : `origin ${describeRegion(origin)} is not a region of policy v${this.version}`,
    );
  }

  // ---------------------------------------------------------------- construction

  private unlistedPolicy(name: string): DatasetPolicy {
    const placement: Placement = { kind: this.unlisted };
    return Object.freeze({ name, listed: false, type: 'map', placement, priority: 'normal', cadenceMs: null, rate: null });
  }

  private unlistedRuntimeFor(name: string): DatasetRuntime {
    if (!datasetNamePattern.test(name)) checkDatasetName(name);
    return this.unlistedRuntime;
  }

  private runtimeOf(policy: DatasetPolicy, index: number, rulesReadKey: boolean): DatasetRuntime {
    const placement = policy.placement;
    switch (placement.kind) {
      case 'global':
        return { policy, index, base: new Set(this.regions.keys()), home: null, within: null, readsKey: rulesReadKey };
      case 'regions':
        return { policy, index, base: new Set(placement.regions), home: null, within: null, readsKey: rulesReadKey };
      case 'home': {
        const home = this.compile(placement.home, 'home', `the home of dataset ${policy.name}`);
        const within = placement.within === null || placement.within === 'jurisdiction' ? placement.within : new Set(placement.within);
        return { policy, index, base: null, home, within, readsKey: rulesReadKey || home.readsKey };
      }
      case 'local':
      case 'refuse':
        return { policy, index, base: null, home: null, within: null, readsKey: false };
    }
  }

  private compile(text: string, kind: ExpressionKind, what: string): CompiledExpression {
    const result = compileExpression(text, kind);
    assert(isCompiled(result), `${what} of a validated policy compiles: ${isCompiled(result) ? '' : result.message}`);
    return result;
  }
}

/** Runs a rule: true or false, or the decision that denies because it failed. */
function runRule(rule: CompiledRule, context: object): boolean | Decision {
  let result: unknown;
  try {
    result = rule.expression.run(context);
  } catch (error) {
    return decision(false, 'error', rule.name, `rule "${rule.name}": ${celFailure(error)}`);
  }
  if (typeof result !== 'boolean') return decision(false, 'error', rule.name, `rule "${rule.name}" returned a ${typeof result}, not a bool`);
  return result;
}

/**
 * A run-time failure by code and position only (its message could quote the document). Whatever an
 * expression throws denies: failing closed on one document is better than a daemon that stops deciding.
 */
function celFailure(error: unknown): string {
  const cel = error as { name?: unknown; code?: unknown; range?: { start?: unknown } } | null;
  const code = typeof cel?.code === 'string' ? cel.code : typeof cel?.name === 'string' ? cel.name : 'error';
  const start = cel?.range?.start;
  return `CEL ${code}${typeof start === 'number' ? ` at column ${start + 1}` : ''}`;
}

function describeRegion(region: string): string {
  const text = JSON.stringify(region);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Checks the names a decision evaluates; a decision is only cached for valid names. */
function checkFacts(doc: DocFacts, tags: readonly string[], readsKey: boolean): void {
  checkDatasetName(doc.dataset);
  for (const tag of tags) checkTag(tag);
  if (readsKey) checkKey(doc.key);
}

/**
 * Throws `ERR_POLICY_DENIED` (421) unless `region` may hold the document; the message lists the regions that
 * may, and so does the error's `regions` (the daemon's 421 problem carries it), sorted. The store and the
 * daemon refuse a write or a read with it.
 */
export function assertMayHold(policy: Policy, doc: DocFacts, region: string): void {
  const verdict = policy.decide(doc, region);
  if (verdict.allow) return;
  const holders = policy.holders(doc);
  const why = verdict.reason === 'rule' ? `rule "${verdict.rule}"` : verdict.reason;
  throw Object.assign(
    new TesseraError(
      'ERR_POLICY_DENIED',
      `region ${describeRegion(region)} may not hold this document of dataset ${doc.dataset} under policy v${policy.version} (${why}): ${
        holders.length === 0 ? 'no region may' : `the regions that may are ${holders.join(', ')}`
      }`,
    ),
    { regions: holders },
  );
}
