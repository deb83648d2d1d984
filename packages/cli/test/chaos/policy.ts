/**
 * The policies of a chaos run: version 1 puts every kind of placement to use; each later version, drawn from
 * the seed, moves one or two datasets to another placement and may add or drop a rule. The schedule installs
 * them during the fault phase.
 *
 * `holders` is the checker's own reading of docs/policy.md's decision order for exactly these policies — an
 * oracle independent of core's `Policy` (which is being rewritten, and which the chaos run is there to test),
 * kept equal to it by `chaos-policy.test.ts` over every placement, rule set and fact combination. The
 * generator is modelled on the simulation's (packages/sim/src/policy.ts) and copied rather than imported: the
 * simulation's datasets and regions are not the chaos run's, and the chaos checker needs the shape as data.
 */
import { type ChaosDataset, type ChaosRegion, chaosDatasetNames, chaosDatasets, chaosRegions, jurisdictionOf } from './model.js';
import { type Random } from './random.js';

/** Where a dataset's documents may live. `home` is the origin, or `move` for documents tagged `move`. */
export type Placement =
  | { readonly kind: 'global' }
  | { readonly kind: 'local' }
  | { readonly kind: 'regions'; readonly regions: readonly ChaosRegion[] }
  | { readonly kind: 'home'; readonly within: 'jurisdiction' | readonly ChaosRegion[] | null; readonly move: ChaosRegion | null };

/** The rules a version may have (each exactly as in DESIGN.md §4 or the simulation). */
export interface PolicyRules {
  /** deny: `'pii' in doc.tags && target.jurisdiction != source.jurisdiction` */
  readonly pii: boolean;
  /** release: `'reviewed' in doc.tags` */
  readonly release: boolean;
  /** allow: `'shared' in doc.tags` */
  readonly shared: boolean;
}

/** One policy version, as data. */
export interface PolicyShape {
  readonly version: number;
  readonly placements: Readonly<Record<ChaosDataset, Placement>>;
  readonly rules: PolicyRules;
}

/** The facts a decision reads (the key is never read by these policies). */
export interface PlacementFacts {
  readonly dataset: string;
  readonly origin: string;
  /** Sorted, without duplicates. */
  readonly tags: readonly string[];
}

/** Version 1: global catalog, counter and set; local audits; orders in two regions; profiles homed within their jurisdiction. */
export function basePolicyShape(): PolicyShape {
  return {
    version: 1,
    placements: {
      catalog: { kind: 'global' },
      visits: { kind: 'global' },
      carts: { kind: 'global' },
      audits: { kind: 'local' },
      orders: { kind: 'regions', regions: ['eu-west', 'us-east'] },
      profiles: { kind: 'home', within: 'jurisdiction', move: null },
    },
    rules: { pii: true, release: true, shared: true },
  };
}

/** How often each kind of placement is drawn for a dataset that moves. */
const placementWeights = { global: 4, local: 2, regions: 3, homeJurisdiction: 2, homeWithin: 1, homeMove: 1 } as const;
/** A rule is dropped (or added back) in a new version with this probability. */
export const ruleToggleProbability = 0.2;

/** The next version: one or two datasets move to another placement; each rule may come or go. */
export function nextPolicyShape(previous: PolicyShape, random: Random): PolicyShape {
  const placements = { ...previous.placements };
  const moves = random.int(1, 2);
  for (let i = 0; i < moves; i++) placements[random.pick(chaosDatasetNames)] = randomPlacement(random);
  const toggle = (on: boolean) => (random.chance(ruleToggleProbability) ? !on : on);
  return {
    version: previous.version + 1,
    placements,
    rules: { pii: toggle(previous.rules.pii), release: toggle(previous.rules.release), shared: toggle(previous.rules.shared) },
  };
}

function randomPlacement(random: Random): Placement {
  switch (random.weighted(placementWeights)) {
    case 'global':
      return { kind: 'global' };
    case 'local':
      return { kind: 'local' };
    case 'regions': {
      const regions = chaosRegions.filter(() => random.chance(0.5));
      return { kind: 'regions', regions: regions.length > 0 ? regions : [random.pick(chaosRegions)] };
    }
    case 'homeJurisdiction':
      return { kind: 'home', within: 'jurisdiction', move: null };
    case 'homeWithin':
      return { kind: 'home', within: [random.pick(chaosRegions)], move: null };
    case 'homeMove':
      return { kind: 'home', within: null, move: random.pick(chaosRegions) };
  }
}

/** A placement in policy text. */
export function placementText(placement: Placement): string {
  switch (placement.kind) {
    case 'global':
    case 'local':
      return placement.kind;
    case 'regions':
      return `{ regions: [${placement.regions.join(', ')}] }`;
    case 'home': {
      const home = placement.move === null ? 'doc.origin' : `"'move' in doc.tags ? '${placement.move}' : doc.origin"`;
      const within =
        placement.within === null ? '' : placement.within === 'jurisdiction' ? ', within: jurisdiction' : `, within: [${placement.within.join(', ')}]`;
      return `{ home: ${home}${within} }`;
    }
  }
}

/** The policy text of a version. */
export function policyText(shape: PolicyShape): string {
  const lines = [`version: ${shape.version}`, 'regions:'];
  const locations: Record<ChaosRegion, string> = { 'eu-west': '[53.3, -6.3]', 'eu-central': '[50.1, 8.7]', 'us-east': '[38.9, -77.0]' };
  for (const region of chaosRegions) lines.push(`  ${region}: { jurisdiction: ${jurisdictionOf(region)}, location: ${locations[region]} }`);
  lines.push('datasets:');
  for (const name of chaosDatasetNames) {
    const { type, settings } = chaosDatasets[name];
    lines.push(`  ${name}: { type: ${type}, placement: ${placementText(shape.placements[name])}${settings === '' ? '' : `, ${settings}`} }`);
  }
  const rules: string[] = [];
  if (shape.rules.pii) rules.push('  - name: pii stays in its jurisdiction', `    deny: "'pii' in doc.tags && target.jurisdiction != source.jurisdiction"`);
  if (shape.rules.release) rules.push('  - name: reviewed documents leave quarantine', `    release: "'reviewed' in doc.tags"`);
  if (shape.rules.shared) rules.push('  - name: shared documents go everywhere', `    allow: "'shared' in doc.tags"`);
  if (rules.length > 0) lines.push('rules:', ...rules);
  return `${lines.join('\n')}\n`;
}

/** One line for reports: what each dataset's placement is and which rules hold. */
export function describeShape(shape: PolicyShape): string {
  const rules = Object.entries(shape.rules)
    .filter(([, on]) => on)
    .map(([name]) => name);
  return `v${shape.version}: ${chaosDatasetNames.map((name) => `${name} ${placementText(shape.placements[name]).replace(/"/g, '')}`).join('; ')}; rules ${rules.join(', ') || 'none'}`;
}

/**
 * May `target` hold a document with these facts under `shape`? docs/policy.md's decision order: `local`
 * allows exactly the origin and reads no rule; otherwise (target ∈ base ∨ an allow rule) ∧ ¬ a deny rule;
 * then a quarantined document that no release rule matches is held by its origin only.
 */
export function mayHold(shape: PolicyShape, facts: PlacementFacts, target: string): boolean {
  if (!(chaosRegions as readonly string[]).includes(facts.origin) || !(chaosRegions as readonly string[]).includes(target)) return false;
  // Datasets the policy does not list are `unlisted: global` (the default); the workload writes none.
  const placement = shape.placements[facts.dataset as ChaosDataset] ?? { kind: 'global' };
  if (placement.kind === 'local') return target === facts.origin;
  const tags = new Set(facts.tags);
  let base: boolean;
  switch (placement.kind) {
    case 'global':
      base = true;
      break;
    case 'regions':
      base = placement.regions.includes(target as ChaosRegion);
      break;
    case 'home': {
      const home = placement.move !== null && tags.has('move') ? placement.move : facts.origin;
      base =
        target === home ||
        (placement.within === 'jurisdiction' && jurisdictionOf(target) === jurisdictionOf(home)) ||
        (Array.isArray(placement.within) && placement.within.includes(target as ChaosRegion));
      break;
    }
  }
  const allowed =
    (base || (shape.rules.shared && tags.has('shared'))) && !(shape.rules.pii && tags.has('pii') && jurisdictionOf(target) !== jurisdictionOf(facts.origin));
  if (tags.has('quarantine') && !(shape.rules.release && tags.has('reviewed'))) return allowed && target === facts.origin;
  return allowed;
}

/** The regions that may hold a document with these facts, in region order. */
export function holders(shape: PolicyShape, facts: PlacementFacts): ChaosRegion[] {
  return chaosRegions.filter((region) => mayHold(shape, facts, region));
}
