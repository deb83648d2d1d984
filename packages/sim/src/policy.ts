/**
 * The policies a simulation runs under: version 1 names every value type and every kind of placement (global,
 * regions, home within a jurisdiction, local) and the two rules of DESIGN.md §4 (pii stays in its jurisdiction,
 * reviewed documents leave quarantine); later versions are drawn from the seed by moving datasets between
 * placements and adding or dropping rules.
 */
import { type CrdtTypeName, type Policy, parsePolicy } from '@tessera/core';
import { type Random } from './random.js';

/** A region of the simulated cluster. */
export interface SimRegion {
  readonly name: string;
  readonly jurisdiction: string;
}

/** Regions in the order nodes are placed in them (3 to 5 nodes use the first 3 to 5). */
export const simRegions: readonly SimRegion[] = [
  { name: 'eu-west', jurisdiction: 'eu' },
  { name: 'eu-central', jurisdiction: 'eu' },
  { name: 'us-east', jurisdiction: 'us' },
  { name: 'us-west', jurisdiction: 'us' },
  { name: 'ap-south', jurisdiction: 'ap' },
];

/** A dataset of the workload: its type and the placement of policy version 1. */
export interface SimDataset {
  readonly name: string;
  readonly type: CrdtTypeName;
  /** Extra settings written into every version (priority, cadence): they pick the lanes, which stay fixed. */
  readonly settings: string;
}

/** Every value type, and one dataset per kind of placement. */
export const simDatasets: readonly SimDataset[] = [
  { name: 'catalog', type: 'map', settings: 'priority: high' },
  { name: 'notes', type: 'lww', settings: '' },
  { name: 'votes', type: 'mv', settings: '' },
  { name: 'stats', type: 'counter', settings: 'cadence: 200ms' },
  { name: 'labels', type: 'set', settings: '' },
  { name: 'texts', type: 'yjs', settings: '' },
  { name: 'drafts', type: 'automerge', settings: '' },
  { name: 'audits', type: 'lww', settings: '' },
  { name: 'orders', type: 'map', settings: '' },
  { name: 'profiles', type: 'map', settings: '' },
];

/** A dataset's placement in policy text. */
export type PlacementText = string;

/** What a policy version says: per dataset its placement, and which optional rules it has. */
export interface PolicyShape {
  readonly version: number;
  readonly placements: Readonly<Record<string, PlacementText>>;
  readonly piiRule: boolean;
  readonly releaseRule: boolean;
  readonly sharedRule: boolean;
}

/** Version 1: the sketch of DESIGN.md §4 over the regions of the cluster. */
export function basePolicyShape(regions: readonly SimRegion[]): PolicyShape {
  const two = [regions[0]!.name, regions[2]!.name];
  return {
    version: 1,
    placements: {
      catalog: 'global',
      notes: 'global',
      votes: 'global',
      stats: 'global',
      labels: 'global',
      texts: 'global',
      drafts: 'global',
      audits: 'local',
      orders: `{ regions: [${two.join(', ')}] }`,
      profiles: '{ home: doc.origin, within: jurisdiction }',
    },
    piiRule: true,
    releaseRule: true,
    sharedRule: true,
  };
}

/** The next version: a few datasets move to another placement, rules may come or go. */
export function nextPolicyShape(previous: PolicyShape, regions: readonly SimRegion[], random: Random): PolicyShape {
  const placements = { ...previous.placements };
  const moves = random.range(1, 3);
  for (let i = 0; i < moves; i++) {
    const dataset = random.pick(simDatasets).name;
    placements[dataset] = randomPlacement(regions, random);
  }
  return {
    version: previous.version + 1,
    placements,
    piiRule: random.chance(0.8) ? previous.piiRule : !previous.piiRule,
    releaseRule: random.chance(0.8) ? previous.releaseRule : !previous.releaseRule,
    sharedRule: random.chance(0.8) ? previous.sharedRule : !previous.sharedRule,
  };
}

function randomPlacement(regions: readonly SimRegion[], random: Random): PlacementText {
  return random.weighted<() => string>([
    [4, () => 'global'],
    [2, () => 'local'],
    [
      3,
      () =>
        `{ regions: [${random
          .sample(
            regions.map((r) => r.name),
            random.range(1, regions.length),
          )
          .join(', ')}] }`,
    ],
    [2, () => '{ home: doc.origin, within: jurisdiction }'],
    [1, () => `{ home: doc.origin, within: [${random.pick(regions).name}] }`],
    [1, () => `{ home: "'move' in doc.tags ? '${random.pick(regions).name}' : doc.origin" }`],
  ])();
}

/** The policy text of a shape. */
export function policyText(shape: PolicyShape, regions: readonly SimRegion[]): string {
  const lines = [`version: ${shape.version}`, 'regions:'];
  for (const region of regions) lines.push(`  ${region.name}: { jurisdiction: ${region.jurisdiction} }`);
  lines.push('datasets:');
  for (const dataset of simDatasets) {
    const extra = dataset.settings === '' ? '' : `, ${dataset.settings}`;
    lines.push(`  ${dataset.name}: { type: ${dataset.type}, placement: ${shape.placements[dataset.name]}${extra} }`);
  }
  const rules: string[] = [];
  if (shape.piiRule) rules.push('  - name: pii stays in its jurisdiction', `    deny: "'pii' in doc.tags && target.jurisdiction != source.jurisdiction"`);
  if (shape.releaseRule) rules.push('  - name: reviewed documents leave quarantine', `    release: "'reviewed' in doc.tags"`);
  if (shape.sharedRule) rules.push('  - name: shared orders go everywhere', `    allow: "doc.dataset == 'orders' && 'shared' in doc.tags"`);
  if (rules.length > 0) lines.push('rules:', ...rules);
  return `${lines.join('\n')}\n`;
}

/** Parses a shape into a policy. */
export function buildPolicy(shape: PolicyShape, regions: readonly SimRegion[]): Policy {
  return parsePolicy(policyText(shape, regions), `sim policy v${shape.version}`);
}
