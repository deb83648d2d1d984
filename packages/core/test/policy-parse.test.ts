// Goal: a policy text is accepted exactly when it follows docs/policy.md, and every refusal names the source,
// line:column, field path, value and rule, with every problem of the text reported together; the canonical
// form depends on the policy's meaning only, not on its formatting, key order, defaults or YAML-vs-JSON.
// Method: one valid policy (the example of docs/policy.md) mutated one mistake at a time; each refusal is
// checked for its code and its exact message. Limits are tested at their edges.
import t from 'tap';
import {
  type TesseraError,
  expressionLengthMax,
  parsePolicy,
  policyBytesMax,
  policyDatasetsMax,
  policyProblemsMax,
  policyRegionsMax,
  policyRulesMax,
} from '@tessera/core';
import { examplePolicyText } from './helpers/policy.js';

/** The type of a subtest's `t`. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const example = examplePolicyText;

/** A small valid head to build limit cases on. */
const head = `version: 1
regions:
  eu-west: { jurisdiction: eu }
`;

/** `example` with `from` (which must occur) replaced by `to`. */
function edit(from: string, to: string): string {
  if (!example.includes(from)) throw new Error(`the example has no ${JSON.stringify(from)}`);
  return example.replace(from, to);
}

/** The code and message of the refusal of `text` (fails the test if it parses). */
function refusal(t: Test, text: string): { code: string; message: string } {
  try {
    parsePolicy(text, 'policy.yaml');
  } catch (error) {
    const { code, message, status } = error as TesseraError;
    t.equal(status, 400, 'status 400');
    return { code, message };
  }
  t.fail('expected a refusal');
  return { code: '', message: '' };
}

t.test('the example parses into regions, datasets with defaults, and rules in order', async (t) => {
  const policy = parsePolicy(example, 'policy.yaml');
  t.equal(policy.version, 7);
  t.equal(policy.unlisted, 'global');
  t.equal(policy.text, example);
  t.equal(policy.source, 'policy.yaml');
  t.same([...policy.regions.keys()], ['eu-west', 'eu-central', 'us-east'], 'regions in file order');
  t.same(policy.regionNames, ['eu-central', 'eu-west', 'us-east'], 'region names sorted');
  t.same(policy.regions.get('us-east'), { name: 'us-east', jurisdiction: 'us', location: [38.9, -77] });
  t.same(policy.dataset('catalog'), {
    name: 'catalog',
    listed: true,
    type: 'map',
    placement: { kind: 'global' },
    priority: 'high',
    cadenceMs: null,
    rate: null,
  });
  t.same(policy.dataset('profiles').placement, { kind: 'home', home: 'doc.origin', within: 'jurisdiction' });
  t.same(policy.dataset('orders'), {
    name: 'orders',
    listed: true,
    type: 'map',
    placement: { kind: 'regions', regions: ['eu-west', 'us-east'] },
    priority: 'normal',
    cadenceMs: 30_000,
    rate: { bytesPerSecondMax: 1_048_576, entriesPerSecondMax: 5_000 },
  });
  t.same(policy.dataset('audits').placement, { kind: 'local' });
  t.same(
    policy.dataset('visits'),
    {
      name: 'visits',
      listed: false,
      type: 'map',
      placement: { kind: 'global' },
      priority: 'normal',
      cadenceMs: null,
      rate: null,
    },
    'an unlisted dataset gets the unlisted default',
  );
  t.same(
    policy.rules.map((rule) => [rule.effect, rule.name]),
    [
      ['deny', 'pii stays in its jurisdiction'],
      ['release', 'reviewed documents leave quarantine'],
      ['allow', 'shared catalog items go to us-east too'],
    ],
  );
  t.ok(Object.isFrozen(policy.dataset('orders')) && Object.isFrozen(policy.rules), 'the parts are immutable');
});

t.test('optional sections: no datasets, no rules, unlisted defaults to global', async (t) => {
  const policy = parsePolicy(head, 'p.yaml');
  t.equal(policy.unlisted, 'global');
  t.equal(policy.datasets.size, 0);
  t.same(policy.rules, []);
  t.same(parsePolicy(`${head}unlisted: refuse\n`, 'p.yaml').dataset('x').placement, { kind: 'refuse' });
  t.same(parsePolicy(`${head}unlisted: local\n`, 'p.yaml').dataset('x').placement, { kind: 'local' });
});

t.test('the same policy written as JSON parses to the same canonical form', async (t) => {
  const json = JSON.stringify(
    {
      rules: [
        { deny: "'pii' in doc.tags && target.jurisdiction != source.jurisdiction", name: 'pii stays in its jurisdiction' },
        { name: 'reviewed documents leave quarantine', release: "'reviewed' in doc.tags" },
        { name: 'shared catalog items go to us-east too', allow: "doc.dataset == 'orders' && 'shared' in doc.tags" },
      ],
      datasets: {
        audits: { placement: 'local', type: 'lww' },
        orders: { rate: { entriesPerSecond: 5000, bytesPerSecond: 1048576 }, cadence: '30000ms', placement: { regions: ['us-east', 'eu-west'] } },
        profiles: { placement: { within: 'jurisdiction', home: 'doc.origin' }, priority: 'normal' },
        catalog: { priority: 'high', placement: 'global' },
      },
      regions: {
        'eu-west': { location: [53.3, -6.3], jurisdiction: 'eu' },
        'eu-central': { jurisdiction: 'eu', location: [50.1, 8.7] },
        'us-east': { jurisdiction: 'us', location: [38.9, -77.0] },
      },
      version: 7,
    },
    null,
    2,
  );
  const fromYaml = parsePolicy(example, 'policy.yaml');
  const fromJson = parsePolicy(json, 'policy.json');
  t.equal(fromJson.canonical, fromYaml.canonical, 'key order, defaults, set order and duration units do not matter');
  t.equal(parsePolicy(fromYaml.canonical, 'canonical.json').canonical, fromYaml.canonical, 'the canonical form is itself a policy, and a fixed point');
  const canonical = JSON.parse(fromYaml.canonical);
  t.same(Object.keys(canonical), ['datasets', 'regions', 'rules', 'unlisted', 'version'], 'keys sorted');
  t.same(canonical.datasets.orders, {
    cadence: '30s',
    placement: { regions: ['eu-west', 'us-east'] },
    priority: 'normal',
    rate: { bytesPerSecond: 1048576, entriesPerSecond: 5000 },
    type: 'map',
  });
});

t.test('the canonical form changes with the meaning: block style and comments do not, a rule or a region does', async (t) => {
  const block = `# the same policy, block style
version: 7
regions:
  us-east:
    location: [38.9, -77]
    jurisdiction: us
  eu-central: { location: [50.1, 8.7], jurisdiction: eu }
  eu-west:
    jurisdiction: eu
    location:
      - 53.3
      - -6.3
datasets:
  audits: { type: lww, placement: local, priority: normal }
  catalog:
    placement: global
    priority: high
  orders:
    placement:
      regions:
        - us-east
        - eu-west
    cadence: 30s
    rate:
      entriesPerSecond: 5000
      bytesPerSecond: 1048576
  profiles: { placement: { home: "  doc.origin ", within: jurisdiction } }
rules:
  - name: pii stays in its jurisdiction
    deny: >-
      'pii' in doc.tags && target.jurisdiction != source.jurisdiction
  - { name: reviewed documents leave quarantine, release: "'reviewed' in doc.tags" }
  - name: shared catalog items go to us-east too
    allow: doc.dataset == 'orders' && 'shared' in doc.tags
`;
  const canonical = parsePolicy(example, 'a.yaml').canonical;
  t.equal(parsePolicy(block, 'b.yaml').canonical, canonical, 'block style, comments, order, explicit defaults, trimmed expressions');
  t.not(parsePolicy(edit('version: 7', 'version: 8'), 'c.yaml').canonical, canonical, 'version');
  t.not(parsePolicy(edit('jurisdiction: us', 'jurisdiction: usa'), 'c.yaml').canonical, canonical, 'a jurisdiction');
  t.not(parsePolicy(edit("deny: \"'pii'", "allow: \"'pii'"), 'c.yaml').canonical, canonical, 'a rule effect');
  const reordered = example.replace(/( {2}- name: pii[^\n]*\n[^\n]*\n)( {2}- name: reviewed[^\n]*\n[^\n]*\n)/, '$2$1');
  t.not(reordered, example);
  t.not(parsePolicy(reordered, 'c.yaml').canonical, canonical, 'rule order (it names the reason of a decision)');
});

t.test('each class of mistake is refused at its line and column', async (t) => {
  const placementRule = 'a placement is global, local, { regions: [...] } or { home: <CEL expression>, within: jurisdiction | [...] }';
  const locationRule = 'a location is [latitude, longitude] in degrees: latitude -90 to 90, longitude -180 to 180';
  const cadenceRule = 'a cadence is a duration from 10ms to 1h, such as 500ms, 30s or 5m (leave it out for the adaptive cadence)';
  // [what, text, expected message]
  const cases: Array<[string, string, string]> = [
    [
      'unknown region in a placement',
      edit('regions: [eu-west, us-east]', 'regions: [eu-west, eu-north]'),
      'policy.yaml:10:58: datasets.orders.placement.regions[1] "eu-north": not a region of this policy (regions: eu-west, eu-central, us-east)',
    ],
    [
      'duplicate region in a placement',
      edit('regions: [eu-west, us-east]', 'regions: [eu-west, eu-west]'),
      'policy.yaml:10:58: datasets.orders.placement.regions[1] "eu-west": listed twice (also datasets.orders.placement.regions[0])',
    ],
    [
      'empty region list',
      edit('regions: [eu-west, us-east]', 'regions: []'),
      'policy.yaml:10:48: datasets.orders.placement.regions (a list): a non-empty list of regions of this policy',
    ],
    [
      'unknown placement',
      edit('placement: global, priority: high', 'placement: everywhere, priority: high'),
      `policy.yaml:8:37: datasets.catalog.placement "everywhere": ${placementRule}`,
    ],
    [
      'regions and home together',
      edit('placement: { regions: [eu-west, us-east] }', 'placement: { regions: [eu-west], home: doc.origin }'),
      'policy.yaml:10:59: datasets.orders.placement.home: a placement has either regions or home (with within), not both',
    ],
    [
      'within without home',
      edit('placement: global, priority: high', 'placement: { within: jurisdiction }, priority: high'),
      `policy.yaml:8:37: datasets.catalog.placement: ${placementRule}`,
    ],
    [
      'missing placement',
      edit('placement: global, priority: high', 'priority: high'),
      `policy.yaml:8:13: datasets.catalog: missing field "placement": ${placementRule}`,
    ],
    [
      'bad within',
      edit('within: jurisdiction', 'within: continent'),
      'policy.yaml:9:65: datasets.profiles.placement.within "continent": within is jurisdiction (every region of the home\'s jurisdiction) or a list of regions',
    ],
    [
      'unknown region in within',
      edit('within: jurisdiction', 'within: [us-west]'),
      'policy.yaml:9:66: datasets.profiles.placement.within[0] "us-west": not a region of this policy (regions: eu-west, eu-central, us-east)',
    ],
    [
      'bad priority',
      edit('priority: high', 'priority: urgent'),
      'policy.yaml:8:55: datasets.catalog.priority "urgent": the priority is one of high, normal, low',
    ],
    ['cadence below 10ms', edit('cadence: 30s', 'cadence: 5ms'), `policy.yaml:10:79: datasets.orders.cadence "5ms": ${cadenceRule}`],
    ['cadence above 1h', edit('cadence: 30s', 'cadence: 2h'), `policy.yaml:10:79: datasets.orders.cadence "2h": ${cadenceRule}`],
    ['cadence without unit', edit('cadence: 30s', 'cadence: 30'), `policy.yaml:10:79: datasets.orders.cadence 30: ${cadenceRule}`],
    [
      'zero rate',
      edit('bytesPerSecond: 1048576', 'bytesPerSecond: 0'),
      'policy.yaml:10:108: datasets.orders.rate.bytesPerSecond 0: bytesPerSecond is a positive integer',
    ],
    [
      'unknown rate field',
      edit('bytesPerSecond: 1048576', 'bitsPerSecond: 1048576'),
      'policy.yaml:10:92: datasets.orders.rate.bitsPerSecond: unknown field in datasets.orders.rate: the fields are bytesPerSecond, entriesPerSecond',
    ],
    [
      'empty rate',
      edit('rate: { bytesPerSecond: 1048576, entriesPerSecond: 5000 }', 'rate: {}'),
      'policy.yaml:10:90: datasets.orders.rate (a map): a rate is { bytesPerSecond, entriesPerSecond }, one or both, positive integers',
    ],
    [
      'unknown type',
      edit('type: lww', 'type: blob'),
      'policy.yaml:11:21: datasets.audits.type "blob": the type is one of map, lww, mv, counter, set, yjs, automerge',
    ],
    [
      'unknown dataset field',
      edit('type: lww', 'type: lww, replicas: 3'),
      'policy.yaml:11:26: datasets.audits.replicas: unknown field in datasets.audits: the fields are type, placement, priority, cadence, rate',
    ],
    [
      'bad dataset name',
      edit('  orders:   {', '  Orders:   {'),
      'policy.yaml:10:3: datasets.Orders "Orders": use 1 to 64 characters [a-z0-9_-], starting with a letter',
    ],
    [
      'unknown top-level field',
      edit('unlisted: global', 'unlisted: global\nowner: ops'),
      'policy.yaml:3:1: owner: unknown field: the fields are version, unlisted, regions, datasets, rules',
    ],
    ['missing version', edit('version: 7\n', ''), 'policy.yaml:1:1: missing field "version": version is a positive integer; raise it with every change'],
    ['version 0', edit('version: 7', 'version: 0'), 'policy.yaml:1:10: version 0: version is a positive integer; raise it with every change'],
    ['version as a string', edit('version: 7', 'version: "7"'), 'policy.yaml:1:10: version "7": version is a positive integer; raise it with every change'],
    ['fractional version', edit('version: 7', 'version: 1.5'), 'policy.yaml:1:10: version 1.5: version is a positive integer; raise it with every change'],
    [
      'bad unlisted',
      edit('unlisted: global', 'unlisted: drop'),
      'policy.yaml:2:11: unlisted "drop": unlisted is one of global, local, refuse: the placement of datasets the policy does not list',
    ],
    [
      'bad region name',
      edit('  us-east:    {', '  US-East:    {'),
      'policy.yaml:6:3: regions.US-East "US-East": use 1 to 64 characters [a-z0-9_-], starting with a letter\n' +
        'policy.yaml:10:58: datasets.orders.placement.regions[1] "us-east": not a region of this policy (regions: eu-west, eu-central, US-East)',
    ],
    [
      'region name too long for its origin tag',
      `version: 1\nregions:\n  ${'r'.repeat(58)}: { jurisdiction: eu }\n`,
      `policy.yaml:3:3: regions.${'r'.repeat(58)} "${'r'.repeat(58)}": a region of a policy is at most 57 characters (its origin tag, origin:<region>, is a tag)`,
    ],
    [
      'bad jurisdiction',
      edit('jurisdiction: us', 'jurisdiction: US'),
      'policy.yaml:6:31: regions.us-east.jurisdiction "US": a jurisdiction is 1 to 32 characters [a-z0-9-]',
    ],
    [
      'missing jurisdiction',
      edit('{ jurisdiction: us, location: [38.9, -77.0] }', '{ location: [38.9, -77.0] }'),
      'policy.yaml:6:15: regions.us-east: missing field "jurisdiction"',
    ],
    ['latitude out of range', edit('[38.9, -77.0]', '[91, -77.0]'), `policy.yaml:6:46: regions.us-east.location[0] 91: ${locationRule}`],
    ['longitude out of range', edit('[38.9, -77.0]', '[38.9, -180.5]'), `policy.yaml:6:52: regions.us-east.location[1] -180.5: ${locationRule}`],
    ['location of one number', edit('[38.9, -77.0]', '[38.9]'), `policy.yaml:6:45: regions.us-east.location (a list): ${locationRule}`],
    ['location of words', edit('[38.9, -77.0]', '[north, west]'), `policy.yaml:6:46: regions.us-east.location[0] "north": ${locationRule}`],
    [
      'region not a map',
      'version: 1\nregions:\n  eu-west: eu\n',
      'policy.yaml:3:12: regions.eu-west "eu": a region is a map { jurisdiction, location }, for example { jurisdiction: eu, location: [53.3, -6.3] }',
    ],
    ['no regions', 'version: 1\nregions: {}\n', 'policy.yaml:2:10: regions (0 regions): a policy has 1 to 64 regions'],
    ['missing regions', 'version: 1\n', 'policy.yaml:1:1: missing field "regions": a map from region name to { jurisdiction, location }'],
    [
      'datasets as a list',
      `${head}datasets: [a]\n`,
      'policy.yaml:4:11: datasets (a list): datasets must be a map from dataset name to { type, placement, priority, cadence, rate }',
    ],
    ['rules as a map', `${head}rules: { a: 1 }\n`, 'policy.yaml:4:8: rules (a map): rules must be a list of { name, allow | deny | release }'],
    ['rule without a name', edit('  - name: pii stays in its jurisdiction\n    deny:', '  - deny:'), 'policy.yaml:13:5: rules[0]: missing field "name"'],
    [
      'duplicate rule name',
      edit('name: reviewed documents leave quarantine', 'name: pii stays in its jurisdiction'),
      'policy.yaml:15:11: rules[1].name "pii stays in its jurisdiction": rule names must be unique (also rules[0] at 13:11)',
    ],
    [
      'rule name too long',
      `${head}rules:\n  - name: ${'n'.repeat(129)}\n    deny: "false"\n`,
      `policy.yaml:5:11: rules[0].name "${'n'.repeat(76)}...: a rule name is 1 to 128 characters, without control characters`,
    ],
    [
      'rule name with a tab',
      `${head}rules:\n  - name: "a\\tb"\n    deny: "false"\n`,
      'policy.yaml:5:11: rules[0].name "a\\tb": a rule name is 1 to 128 characters, without control characters',
    ],
    [
      'rule without an effect',
      edit('    release: "\'reviewed\' in doc.tags"\n', ''),
      'policy.yaml:15:5: rules[1]: a rule has exactly one of allow, deny, release: a CEL expression that returns bool',
    ],
    [
      'rule with two effects',
      edit('    release: "\'reviewed\' in doc.tags"\n', '    release: "\'reviewed\' in doc.tags"\n    allow: "true"\n'),
      'policy.yaml:17:5: rules[1].allow: a rule has exactly one of allow, deny, release (release is set)',
    ],
    [
      'expression not a string',
      edit('release: "\'reviewed\' in doc.tags"', 'release: true'),
      'policy.yaml:16:14: rules[1].release true: must be a string; quote it: "true"',
    ],
    ['empty expression', edit('release: "\'reviewed\' in doc.tags"', 'release: ""'), 'policy.yaml:16:14: rules[1].release "": must not be empty'],
    [
      'unknown rule field',
      edit('release: "\'reviewed\' in doc.tags"', 'release: "\'reviewed\' in doc.tags"\n    why: audit'),
      'policy.yaml:17:5: rules[1].why: unknown field in rules[1]: the fields are name, allow, deny, release',
    ],
    [
      'YAML syntax',
      `${head}datasets:\n  a: { placement: global\n`,
      'policy.yaml:6:1: YAML: Flow map in block collection must be sufficiently indented and end with a }',
    ],
    ['duplicate keys', `${head}datasets:\n  a: { placement: global }\n  a: { placement: local }\n`, 'policy.yaml:6:3: YAML: Map keys must be unique'],
    ['alias', `${head}datasets:\n  a: &p { placement: global }\n  b: *p\n`, 'policy.yaml:6:6: aliases (*p) are not supported in a policy'],
    ['empty text', '# nothing here\n', 'policy.yaml:1:1: the policy is empty: expected a map with version, regions, datasets and rules'],
    ['not a map', '- a\n', 'policy.yaml:1:1: (a list): a policy is a map with the fields version, unlisted, regions, datasets, rules'],
  ];
  for (const [what, text, expected] of cases) {
    const { code, message } = refusal(t, text);
    t.equal(code, 'ERR_POLICY_INVALID', `${what}: code`);
    t.equal(message, expected, what);
  }
});

t.test('CEL expressions that do not parse or type-check are refused at their position in the file', async (t) => {
  const rule = 'rules[1].release (rule "reviewed documents leave quarantine")';
  const release = 'release: "\'reviewed\' in doc.tags"';
  // [what, text, expected message]
  const cases: Array<[string, string, string]> = [
    [
      'syntax error, double-quoted',
      edit(release, 'release: "\'reviewed\' in doc.tags &&"'),
      `policy.yaml:16:40: ${rule}: Unexpected token: EOF (column 26 of the expression)`,
    ],
    [
      'unknown field, single-quoted with an escaped quote',
      edit(release, "release: '''reviewed'' in doc.tagz'"),
      `policy.yaml:16:35: ${rule}: No such key: tagz (doc has dataset, key, tags, origin, home; source and target have name, jurisdiction, location) (column 19 of the expression)`,
    ],
    [
      'unknown field, double-quoted with escapes',
      edit(release, 'release: "\\"reviewed\\" in doc.tagz"'),
      `policy.yaml:16:35: ${rule}: No such key: tagz (doc has dataset, key, tags, origin, home; source and target have name, jurisdiction, location) (column 19 of the expression)`,
    ],
    [
      'unknown field, literal block',
      edit(release, "release: |\n      'reviewed' in doc.tags &&\n        doc.nope"),
      `policy.yaml:18:13: ${rule}: No such key: nope (doc has dataset, key, tags, origin, home; source and target have name, jurisdiction, location) (column 33 of the expression)`,
    ],
    ['unknown variable', edit(release, 'release: region == "eu"'), `policy.yaml:16:14: ${rule}: Unknown variable: region (column 1 of the expression)`],
    [
      'a rule that is not bool',
      edit(release, 'release: doc.tags'),
      `policy.yaml:16:14: ${rule}: a rule must return bool, this one returns list<string> (column 1 of the expression)`,
    ],
    [
      'a rule that is dyn',
      edit(release, 'release: dyn(true)'),
      `policy.yaml:16:14: ${rule}: a rule must return bool, this one returns dyn (column 1 of the expression)`,
    ],
    ['a blank expression', edit(release, 'release: "  "'), `policy.yaml:16:15: ${rule}: the expression is empty (column 1 of the expression)`],
    [
      'home reads doc.home',
      edit('home: doc.origin', 'home: doc.home'),
      'policy.yaml:9:49: datasets.profiles.placement.home (dataset profiles): No such key: home (a home expression cannot read doc.home: it computes it) (column 5 of the expression)',
    ],
    [
      'home reads target',
      edit('home: doc.origin', 'home: target.name'),
      'policy.yaml:9:45: datasets.profiles.placement.home (dataset profiles): Unknown variable: target (column 1 of the expression)',
    ],
    [
      'home that is not a string',
      edit('home: doc.origin', 'home: "doc.tags.size() > 1"'),
      'policy.yaml:9:46: datasets.profiles.placement.home (dataset profiles): a home expression must return string, this one returns bool (column 1 of the expression)',
    ],
    [
      "DESIGN.md's doc.region is doc.origin here",
      edit('home: doc.origin', 'home: doc.region'),
      'policy.yaml:9:49: datasets.profiles.placement.home (dataset profiles): No such key: region (doc has dataset, key, tags, origin; source has name, jurisdiction, location) (column 5 of the expression)',
    ],
    [
      'matches() with a computed pattern',
      edit(release, 'release: doc.key.matches(doc.dataset)'),
      `policy.yaml:16:30: ${rule}: the pattern of matches() must be a string literal (so that it is checked when the policy loads) (column 17 of the expression)`,
    ],
    [
      'matches() with a bad pattern',
      edit(release, "release: doc.key.matches('(')"),
      `policy.yaml:16:30: ${rule}: the pattern of matches() is not a valid regular expression: Invalid regular expression: /(/: Unterminated group (column 17 of the expression)`,
    ],
    [
      'JSON text',
      '{"version": 1, "regions": {"eu-west": {"jurisdiction": "eu"}}, "rules": [{"name": "x", "deny": "doc.nope"}]}',
      'policy.yaml:1:101: rules[0].deny (rule "x"): No such key: nope (doc has dataset, key, tags, origin, home; source and target have name, jurisdiction, location) (column 5 of the expression)',
    ],
  ];
  for (const [what, text, expected] of cases) {
    const { code, message } = refusal(t, text);
    t.equal(code, 'ERR_POLICY_RULE_INVALID', `${what}: code`);
    t.equal(message, expected, what);
  }
});

t.test('all problems are reported together, in file order; mixed with CEL problems the code is ERR_POLICY_INVALID', async (t) => {
  const text = edit('version: 7', 'version: -1')
    .replace('cadence: 30s', 'cadence: 3d')
    .replace('type: lww', 'type: blob')
    .replace('home: doc.origin', 'home: doc.home');
  const { code, message } = refusal(t, text);
  t.equal(code, 'ERR_POLICY_INVALID');
  t.same(
    message.split('\n').map((line) => line.replace(/: .*/, '')),
    ['policy.yaml:1:10', 'policy.yaml:9:49', 'policy.yaml:10:79', 'policy.yaml:11:21'],
  );
  const many = `${head}datasets:\n${Array.from({ length: policyProblemsMax + 10 }, (_, i) => `  d${i}: { placement: everywhere }\n`).join('')}`;
  const lines = refusal(t, many).message.split('\n');
  t.equal(lines.length, policyProblemsMax + 1, 'bounded');
  t.equal(lines.at(-1), '(and 10 more problems)');
});

t.test('limits, at their edges', async (t) => {
  const regions = (count: number) => `version: 1\nregions:\n${Array.from({ length: count }, (_, i) => `  r${i}: { jurisdiction: j }\n`).join('')}`;
  t.equal(parsePolicy(regions(policyRegionsMax), 'p.yaml').regions.size, policyRegionsMax);
  t.equal(refusal(t, regions(policyRegionsMax + 1)).message, 'policy.yaml:3:3: regions (65 regions): a policy has 1 to 64 regions');

  const datasets = (count: number) => `${head}datasets:\n${Array.from({ length: count }, (_, i) => `  d${i}: { placement: global }\n`).join('')}`;
  t.equal(parsePolicy(datasets(policyDatasetsMax), 'p.yaml').datasets.size, policyDatasetsMax);
  t.equal(refusal(t, datasets(policyDatasetsMax + 1)).message, 'policy.yaml:5:3: datasets (1025 datasets): a policy lists at most 1024 datasets');

  const rules = (count: number) => `${head}rules:\n${Array.from({ length: count }, (_, i) => `  - { name: r${i}, deny: "false" }\n`).join('')}`;
  t.equal(parsePolicy(rules(policyRulesMax), 'p.yaml').rules.length, policyRulesMax);
  t.equal(refusal(t, rules(policyRulesMax + 1)).message, 'policy.yaml:5:3: rules (257 rules): a policy has at most 256 rules');

  const ruleName = (length: number) => `${head}rules:\n  - name: ${'n'.repeat(length)}\n    deny: "false"\n`;
  t.equal(parsePolicy(ruleName(128), 'p.yaml').rules[0]!.name.length, 128);

  const expression = (text: string) => `${head}rules:\n  - name: r\n    deny: "${text}"\n`;
  const longest = `false${' '.repeat(expressionLengthMax - 5)}`;
  t.equal(parsePolicy(expression(longest), 'p.yaml').rules[0]!.expression, 'false', 'an expression of exactly the limit');
  const tooLong = refusal(t, expression(`${longest} `));
  t.same(tooLong, {
    code: 'ERR_POLICY_RULE_INVALID',
    message: 'policy.yaml:6:11: rules[0].deny (rule "r"): the expression has 4097 characters, over the limit of 4096',
  });
  const nodes = refusal(t, expression(`${'1+'.repeat(1_100)}1 > 0`));
  t.equal(nodes.code, 'ERR_POLICY_RULE_INVALID');
  t.match(nodes.message, /^policy\.yaml:6:\d+: rules\[0\]\.deny \(rule "r"\): Exceeded maxAstNodes \(2000\) \(column \d+ of the expression\)$/);
  const deep = refusal(t, expression(`${'('.repeat(70)}true${')'.repeat(70)}`));
  t.match(deep.message, /^policy\.yaml:6:\d+: rules\[0\]\.deny \(rule "r"\): Exceeded maxDepth \(64\) \(column \d+ of the expression\)$/);
  t.ok(parsePolicy(expression(`${'('.repeat(30)}true${')'.repeat(30)}`), 'p.yaml'), 'nesting within the limit');

  const padding = `# ${'x'.repeat(policyBytesMax)}\n`;
  t.same(refusal(t, `${head}${padding}`), {
    code: 'ERR_POLICY_INVALID',
    message: `policy.yaml: ${head.length + padding.length} bytes exceed the limit of ${policyBytesMax} bytes for a policy`,
  });
  const exactly = `${head}# ${'x'.repeat(policyBytesMax - head.length - 3)}\n`;
  t.equal(exactly.length, policyBytesMax);
  t.ok(parsePolicy(exactly, 'p.yaml'), 'a text of exactly the limit');
  const multibyte = `${head}# ${'é'.repeat(policyBytesMax / 2)}\n`;
  t.match(refusal(t, multibyte).message, /bytes exceed the limit/, 'the limit counts UTF-8 bytes, not characters');
});
