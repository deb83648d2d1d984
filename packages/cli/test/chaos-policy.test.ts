// Goal: the chaos checker's own reading of the policy (chaos/policy.ts `holders`) agrees with core's `Policy`
// on every policy the schedule can install, so that a residency finding of a chaos run is the product's and
// not the checker's; and the generator produces valid, varied versions.
// Method: every placement kind on every dataset and every rule set, crossed with every origin and every
// subset of the tags that matter (quarantine, reviewed, pii, shared, move), compared region by region with
// `parsePolicy(policyText(shape)).holders(facts)`; then 200 versions drawn from a seed are parsed.
import t from 'tap';
import { parsePolicy } from '@tessera/core';
import { type ChaosDataset, chaosDatasetNames, chaosRegions } from './chaos/model.js';
import { type Placement, type PolicyShape, basePolicyShape, holders, nextPolicyShape, policyText } from './chaos/policy.js';
import { Random } from './chaos/random.js';

const placements: Placement[] = [
  { kind: 'global' },
  { kind: 'local' },
  { kind: 'regions', regions: ['eu-central'] },
  { kind: 'regions', regions: ['eu-west', 'us-east'] },
  { kind: 'home', within: null, move: null },
  { kind: 'home', within: 'jurisdiction', move: null },
  { kind: 'home', within: ['us-east'], move: null },
  { kind: 'home', within: null, move: 'us-east' },
  { kind: 'home', within: 'jurisdiction', move: 'eu-central' },
];
const tagUniverse = ['move', 'pii', 'quarantine', 'reviewed', 'shared'];

t.test("the checker's holders agree with core's on every placement, rule set, origin and tag set", async (t) => {
  let compared = 0;
  let disagreements = 0;
  for (const placement of placements) {
    for (let ruleBits = 0; ruleBits < 8; ruleBits++) {
      const shape: PolicyShape = {
        version: 7,
        placements: Object.fromEntries(chaosDatasetNames.map((name) => [name, placement])) as Record<ChaosDataset, Placement>,
        rules: { pii: (ruleBits & 1) !== 0, release: (ruleBits & 2) !== 0, shared: (ruleBits & 4) !== 0 },
      };
      const policy = parsePolicy(policyText(shape), 'chaos policy');
      for (const origin of chaosRegions) {
        for (let tagBits = 0; tagBits < 1 << tagUniverse.length; tagBits++) {
          const tags = tagUniverse.filter((_, i) => (tagBits & (1 << i)) !== 0);
          for (const dataset of ['catalog', 'orders'] as const) {
            const facts = { dataset, key: 'k', origin, tags };
            const expected = policy.holders(facts);
            const actual = holders(shape, facts);
            compared++;
            if (JSON.stringify(expected) !== JSON.stringify([...actual].sort())) {
              disagreements++;
              if (disagreements <= 10)
                t.fail(
                  `${JSON.stringify(placement)} rules ${JSON.stringify(shape.rules)} origin ${origin} tags [${tags}]: core ${expected}, checker ${actual}`,
                );
            }
          }
        }
      }
    }
  }
  t.equal(disagreements, 0, `${compared} decisions compared`);
});

t.test('generated versions parse, raise the version by one, and vary placements and rules', async (t) => {
  const random = new Random(20261202);
  let shape = basePolicyShape();
  t.equal(parsePolicy(policyText(shape), 'v1').version, 1);
  const kinds = new Set<string>();
  const ruleSets = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const next = nextPolicyShape(shape, random);
    t.equal(next.version, shape.version + 1);
    const policy = parsePolicy(policyText(next), `v${next.version}`);
    if (policy.version !== next.version) t.fail(`v${next.version} parsed as v${policy.version}`);
    for (const placement of Object.values(next.placements))
      kinds.add(`${placement.kind}${placement.kind === 'home' ? `-${placement.move === null ? 'origin' : 'move'}` : ''}`);
    ruleSets.add(JSON.stringify(next.rules));
    shape = next;
  }
  t.same([...kinds].sort(), ['global', 'home-move', 'home-origin', 'local', 'regions'], 'every kind of placement is drawn');
  t.ok(ruleSets.size >= 4, `rule sets vary (${ruleSets.size} seen)`);
});
