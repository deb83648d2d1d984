// Goal: decisions follow docs/policy.md — every placement form, allow and deny rules (deny wins), quarantine
// and release, local datasets, unknown regions and failing expressions (both deny) — and the decision cache
// never changes an answer.
// Method: a table of (document, target) cases over small policies; fast-check compares cached with uncached
// decisions and `holders` with filtering every region by `mayHold`, for random facts, with a fixed seed
// (POLICY_SEED=n to try another).
import t from 'tap';
import fc from 'fast-check';
import {
  type DocFacts,
  type Policy,
  type TesseraError,
  assertMayHold,
  checkUserTags,
  decisionCacheEntriesMax,
  factsOf,
  originTag,
  parsePolicy,
  reservedTagPrefixes,
} from '@tessera/core';

const seed = Number(process.env.POLICY_SEED ?? 20_250_607);

const regions = `regions:
  eu-west:    { jurisdiction: eu, location: [53.3, -6.3] }
  eu-central: { jurisdiction: eu, location: [50.1, 8.7] }
  us-east:    { jurisdiction: us, location: [38.9, -77.0] }
  us-west:    { jurisdiction: us }
`;

/** Placement forms and rules, none of which reads the key. */
const main = parsePolicy(
  `version: 3
${regions}datasets:
  catalog:  { placement: global }
  orders:   { placement: { regions: [eu-west, us-east] } }
  profiles: { placement: { home: doc.origin, within: jurisdiction } }
  homes:    { placement: { home: "'us' in doc.tags ? 'us-east' : 'eu-west'", within: [eu-central] } }
  solo:     { placement: { home: "'us-west'" } }
  audits:   { placement: local }
  lost:     { placement: { home: "'mars-' + doc.origin" } }
  broken:   { placement: { home: "doc.tags[5]" } }
rules:
  - name: pii stays in its jurisdiction
    deny: "'pii' in doc.tags && target.jurisdiction != source.jurisdiction"
  - name: shared orders reach eu-central
    allow: "doc.dataset == 'orders' && 'shared' in doc.tags && target.name == 'eu-central'"
  - name: held documents stay at their origin
    deny: "'hold' in doc.tags && target.name != doc.origin"
  - name: everywhere
    allow: "'everywhere' in doc.tags"
  - name: reviewed documents leave quarantine
    release: "'reviewed' in doc.tags"
`,
  'main.yaml',
);

/** Rules that fail at run time on some documents. */
const failing = parsePolicy(
  `version: 1
${regions}datasets:
  ledger: { placement: { regions: [eu-west] } }
  orders: { placement: { regions: [eu-west] } }
rules:
  - name: large ledger entries stay home
    deny: "doc.dataset == 'ledger' && int(doc.key) > 100"
  - name: open documents go everywhere
    allow: "doc.tags[0] == 'open'"
  - name: third tag reviewed
    release: "doc.tags[2] == 'reviewed'"
`,
  'failing.yaml',
);

/** A rule that reads the key, and `home` expressions that read the key and location. */
const keyed = parsePolicy(
  `version: 1
${regions}unlisted: refuse
datasets:
  docs:   { placement: global }
  routed: { placement: { home: "doc.key.startsWith('us/') ? 'us-east' : 'eu-west'" } }
rules:
  - name: secrets stay in europe
    deny: "doc.key.startsWith('secret-') && target.location.size() == 2 && target.location[1] < -30.0"
`,
  'keyed.yaml',
);

function facts(dataset: string, tags: readonly string[], origin: string | null, key = 'k1'): DocFacts {
  return { dataset, key, tags, origin };
}

t.test('a table of decisions over every placement form and rule kind', async (t) => {
  const all = ['eu-central', 'eu-west', 'us-east', 'us-west'];
  // [what, facts, the regions that may hold it]
  const cases: Array<[string, DocFacts, readonly string[]]> = [
    ['global', facts('catalog', [], 'eu-west'), all],
    ['global, pii: its jurisdiction only', facts('catalog', ['pii'], 'eu-west'), ['eu-central', 'eu-west']],
    ['regions', facts('orders', [], 'eu-west'), ['eu-west', 'us-east']],
    ['regions, written outside them', facts('orders', [], 'eu-central'), ['eu-west', 'us-east']],
    ['regions + an allow rule', facts('orders', ['shared'], 'eu-west'), ['eu-central', 'eu-west', 'us-east']],
    ['deny beats allow (pii from us-east; shared would add eu-central)', facts('orders', ['pii', 'shared'], 'us-east'), ['us-east']],
    ['deny beats allow (hold; everywhere would allow all)', facts('orders', ['everywhere', 'hold'], 'eu-west'), ['eu-west']],
    ['an allow rule outside the placement', facts('orders', ['everywhere'], 'eu-west'), all],
    ['home within jurisdiction (eu)', facts('profiles', [], 'eu-central'), ['eu-central', 'eu-west']],
    ['home within jurisdiction (us)', facts('profiles', [], 'us-west'), ['us-east', 'us-west']],
    ['home within a list', facts('homes', [], 'us-west'), ['eu-central', 'eu-west']],
    ['home within a list, home from the tags', facts('homes', ['us'], 'eu-west'), ['eu-central', 'us-east']],
    ['home alone', facts('solo', [], 'eu-west'), ['us-west']],
    ['home that is no region of the policy', facts('lost', [], 'eu-west'), []],
    ['home that fails', facts('broken', ['a'], 'eu-west'), []],
    ['local', facts('audits', [], 'us-east'), ['us-east']],
    ['local consults no rule (everywhere)', facts('audits', ['everywhere'], 'us-east'), ['us-east']],
    ['quarantine keeps it at its origin', facts('catalog', ['quarantine'], 'us-west'), ['us-west']],
    ['a release rule lets it go', facts('catalog', ['quarantine', 'reviewed'], 'us-west'), all],
    ['released, still under the deny rules', facts('catalog', ['pii', 'quarantine', 'reviewed'], 'us-west'), ['us-east', 'us-west']],
    ['quarantine intersects the placement', facts('orders', ['quarantine'], 'eu-central'), []],
    ['unlisted dataset: the unlisted default (global)', facts('visits', [], 'eu-west'), all],
    ['origin not in the policy', facts('catalog', [], 'ap-south'), []],
    ['no origin', facts('catalog', [], null), []],
  ];
  for (const [what, doc, expected] of cases) {
    t.same(main.holders(doc), expected, what);
    t.same(
      main.regionNames.filter((region) => main.decideUncached(doc, region).allow),
      expected,
      `${what} (uncached)`,
    );
  }
});

t.test('each decision names its reason', async (t) => {
  const cases: Array<[string, DocFacts, string, object]> = [
    ['in the placement', facts('orders', [], 'eu-west'), 'us-east', { allow: true, reason: 'placement' }],
    ['outside the placement', facts('orders', [], 'eu-west'), 'eu-central', { allow: false, reason: 'placement' }],
    ['allowed by a rule', facts('orders', ['shared'], 'eu-west'), 'eu-central', { allow: true, reason: 'rule', rule: 'shared orders reach eu-central' }],
    ['denied by a rule', facts('catalog', ['pii'], 'eu-west'), 'us-east', { allow: false, reason: 'rule', rule: 'pii stays in its jurisdiction' }],
    [
      'the first deny rule in file order',
      facts('catalog', ['hold', 'pii'], 'eu-west'),
      'us-east',
      { allow: false, reason: 'rule', rule: 'pii stays in its jurisdiction' },
    ],
    ['quarantined', facts('catalog', ['quarantine'], 'eu-west'), 'us-east', { allow: false, reason: 'quarantine' }],
    ['quarantined, at its origin', facts('catalog', ['quarantine'], 'eu-west'), 'eu-west', { allow: true, reason: 'placement' }],
    ['local, origin', facts('audits', [], 'eu-west'), 'eu-west', { allow: true, reason: 'local' }],
    ['local, elsewhere', facts('audits', [], 'eu-west'), 'eu-central', { allow: false, reason: 'local' }],
    [
      'unknown target',
      facts('catalog', [], 'eu-west'),
      'ap-south',
      { allow: false, reason: 'unknown-region', detail: 'target "ap-south" is not a region of policy v3' },
    ],
    [
      'unknown origin',
      facts('catalog', [], 'ap-south'),
      'eu-west',
      { allow: false, reason: 'unknown-region', detail: 'origin "ap-south" is not a region of policy v3' },
    ],
    ['no origin', facts('catalog', [], null), 'eu-west', { allow: false, reason: 'unknown-region', detail: 'the document has no origin region' }],
    [
      'home not a region',
      facts('lost', [], 'eu-west'),
      'eu-west',
      { allow: false, reason: 'unknown-region', detail: 'the home of dataset lost, "mars-eu-west" is not a region of policy v3' },
    ],
    [
      'home fails',
      facts('broken', ['a'], 'eu-west'),
      'eu-west',
      { allow: false, reason: 'error', detail: 'the home expression of dataset broken: CEL index_out_of_bounds at column 1' },
    ],
  ];
  for (const [what, doc, target, expected] of cases) {
    t.same(main.decide(doc, target), expected, what);
    t.same(main.decideUncached(doc, target), expected, `${what} (uncached)`);
  }
  t.equal(main.home(facts('profiles', [], 'eu-central')), 'eu-central');
  t.equal(main.home(facts('homes', ['us'], 'eu-west')), 'us-east');
  t.equal(main.home(facts('catalog', [], 'eu-west')), null, 'no home placement');
  t.equal(main.home(facts('lost', [], 'eu-west')), null, 'a home that is not a region');
});

t.test('unlisted: local and refuse', async (t) => {
  const local = parsePolicy(`version: 1\nunlisted: local\n${regions}`, 'p.yaml');
  t.same(local.holders(facts('visits', [], 'us-east')), ['us-east']);
  t.same(local.decide(facts('visits', [], 'us-east'), 'us-east'), { allow: true, reason: 'local' });
  t.same(keyed.holders(facts('visits', [], 'us-east')), [], 'refuse');
  t.same(keyed.decide(facts('visits', [], 'us-east'), 'us-east'), { allow: false, reason: 'refused-dataset' });
});

t.test('expressions that fail at run time deny (fail closed), and the reason names the rule but never the document', async (t) => {
  const ledger = (key: string, tags: readonly string[] = []) => facts('ledger', tags, 'eu-west', key);
  t.same(
    failing.decide(ledger('abc'), 'eu-west'),
    {
      allow: false,
      reason: 'error',
      rule: 'large ledger entries stay home',
      detail: 'rule "large ledger entries stay home": CEL int_conversion_error at column 28',
    },
    'a deny rule that fails denies, even at the origin',
  );
  t.notMatch(JSON.stringify(failing.decide(ledger('abc'), 'eu-west')), /abc/, 'the key is not quoted');
  t.same(failing.decide(ledger('500', ['open']), 'eu-west'), { allow: false, reason: 'rule', rule: 'large ledger entries stay home' });
  t.same(failing.decide(ledger('5'), 'eu-west'), { allow: true, reason: 'placement' }, 'in the placement: allow rules are not needed');
  t.same(
    failing.decide(ledger('5'), 'us-east'),
    { allow: false, reason: 'error', rule: 'open documents go everywhere', detail: 'rule "open documents go everywhere": CEL index_out_of_bounds at column 1' },
    'an allow rule that fails does not allow',
  );
  t.same(failing.decide(ledger('5', ['open']), 'us-east'), { allow: true, reason: 'rule', rule: 'open documents go everywhere' });
  t.same(failing.holders(facts('orders', ['open', 'quarantine'], 'eu-west')), ['eu-west'], 'a release rule that fails does not release');
  t.same(failing.decide(facts('orders', ['open', 'quarantine'], 'eu-west'), 'us-east'), {
    allow: false,
    reason: 'error',
    rule: 'third tag reviewed',
    detail: 'rule "third tag reviewed": CEL index_out_of_bounds at column 1',
  });
  t.same(failing.holders(facts('orders', ['open', 'quarantine', 'reviewed'], 'eu-west')), ['eu-central', 'eu-west', 'us-east', 'us-west']);
});

t.test('decisions that read the key are cached per key; the others are not', async (t) => {
  const base = facts('docs', [], 'eu-west');
  // us-west has no location, so the rule's location test is false there.
  t.same(keyed.holders({ ...base, key: 'secret-1' }), ['eu-central', 'eu-west', 'us-west']);
  t.same(keyed.holders({ ...base, key: 'public' }), ['eu-central', 'eu-west', 'us-east', 'us-west'], 'the cached secret decision is not reused');
  t.same(keyed.holders({ ...base, key: 'secret-2' }), ['eu-central', 'eu-west', 'us-west']);
  t.same(keyed.holders(facts('routed', [], 'eu-west', 'us/42')), ['us-east'], 'a home expression that reads the key');
  t.same(keyed.holders(facts('routed', [], 'eu-west', 'eu/42')), ['eu-west']);

  const before = main.decisionCacheSize;
  for (let i = 0; i < 100; i++) main.holders(facts('catalog', ['pii'], 'eu-central', `key-${i}`));
  t.ok(main.decisionCacheSize - before <= main.regionNames.length, 'one entry per target, whatever the key');
});

t.test('every way of reading the key makes decisions per key', async (t) => {
  // Each rule denies us-east for the key "x" only; a cache that ignored the key would answer for "y" as for "x".
  const reads = [
    "doc.key == 'x'",
    "has(doc.key) && doc.key == 'x'",
    "doc['key'] == 'x'",
    "cel.bind(d, doc, d.key == 'x')",
    "[doc].exists(d, d.key == 'x')",
    "doc.tags.all(t, t != doc.key) && doc.key.startsWith('x')",
  ];
  for (const expression of reads) {
    const policy = parsePolicy(
      `version: 1\n${regions}rules:\n  - name: r\n    deny: ${JSON.stringify(`${expression} && target.name == 'us-east'`)}\n`,
      'p.yaml',
    );
    t.notOk(policy.mayHold(facts('any', [], 'eu-west', 'x'), 'us-east'), `${expression}: x denied`);
    t.ok(policy.mayHold(facts('any', [], 'eu-west', 'y'), 'us-east'), `${expression}: y allowed`);
  }
});

t.test('the cache stays within its bound and keeps answering correctly', async (t) => {
  const policy = parsePolicy(keyed.text, 'keyed.yaml');
  const count = decisionCacheEntriesMax + 5_000;
  for (let i = 0; i < count; i++) policy.decide(facts('docs', [], 'eu-west', `secret-${i}`), 'us-east');
  t.ok(policy.decisionCacheSize <= decisionCacheEntriesMax, `${policy.decisionCacheSize} entries`);
  t.same(policy.decide(facts('docs', [], 'eu-west', 'secret-0'), 'us-east'), { allow: false, reason: 'rule', rule: 'secrets stay in europe' });
  t.same(policy.decide(facts('docs', [], 'eu-west', 'public'), 'us-east'), { allow: true, reason: 'placement' });
});

t.test('facts with invalid names are refused when they are evaluated', async (t) => {
  t.throws(() => main.decide(facts('catalog', ['Not A Tag'], 'eu-west'), 'us-east'), { code: 'ERR_TAG_INVALID' });
  t.throws(() => main.decide(facts('Bad Name', [], 'eu-west'), 'us-east'), { code: 'ERR_DATASET_NAME_INVALID' });
  t.throws(() => keyed.decide(facts('docs', [], 'eu-west', ''), 'us-east'), { code: 'ERR_KEY_INVALID' }, 'the key, where it is read');
});

// The facts a property draws: datasets of every placement (and unlisted ones), tags that rules read, keys that
// rules read, known and unknown regions.
const datasetArb = fc.constantFrom('catalog', 'orders', 'profiles', 'homes', 'solo', 'audits', 'lost', 'broken', 'ledger', 'docs', 'routed', 'visits');
const tagArb = fc.constantFrom('pii', 'shared', 'hold', 'everywhere', 'quarantine', 'reviewed', 'open', 'us', 'a');
const regionArb = fc.constantFrom('eu-west', 'eu-central', 'us-east', 'us-west', 'ap-south');
const factsArb: fc.Arbitrary<DocFacts> = fc.record({
  dataset: datasetArb,
  key: fc.constantFrom('k1', '5', '500', 'abc', 'secret-1', 'us/1', 'eu/1'),
  tags: fc.array(tagArb, { maxLength: 5 }),
  origin: fc.option(regionArb, { nil: null }),
});
const policies: readonly Policy[] = [main, failing, keyed];

t.test('property: a cached decision equals the uncached one, whatever the tag order and duplicates', async (t) => {
  fc.assert(
    fc.property(fc.constantFrom(...policies), factsArb, regionArb, (policy, doc, target) => {
      const expected = policy.decideUncached(doc, target);
      const reordered = { ...doc, tags: [...doc.tags].reverse().concat(doc.tags.slice(0, 1)) };
      for (const candidate of [doc, doc, reordered]) {
        const got = policy.decide(candidate, target);
        if (JSON.stringify(got) !== JSON.stringify(expected)) {
          throw new Error(`${JSON.stringify(candidate)} → ${target}: cached ${JSON.stringify(got)}, uncached ${JSON.stringify(expected)}`);
        }
      }
    }),
    { seed, numRuns: 2_000 },
  );
  t.pass(`2000 cases; reproduce with POLICY_SEED=${seed}`);
});

t.test('property: holders are exactly the regions that mayHold, sorted', async (t) => {
  fc.assert(
    fc.property(fc.constantFrom(...policies), factsArb, (policy, doc) => {
      const expected = policy.regionNames.filter((region) => policy.decideUncached(doc, region).allow);
      const got = policy.holders(doc);
      if (JSON.stringify(got) !== JSON.stringify(expected)) throw new Error(`${JSON.stringify(doc)}: ${got} vs ${expected}`);
      if (JSON.stringify(got) !== JSON.stringify([...got].sort())) throw new Error(`not sorted: ${got}`);
      for (const region of policy.regionNames) if (policy.mayHold(doc, region) !== got.includes(region)) throw new Error(region);
    }),
    { seed, numRuns: 1_000 },
  );
  t.pass(`1000 cases; reproduce with POLICY_SEED=${seed}`);
});

t.test('facts from stored tags: the origin tag is reserved, the smallest one wins', async (t) => {
  t.equal(originTag('eu-west'), 'origin:eu-west');
  t.throws(() => originTag('EU'), { code: 'ERR_REGION_INVALID' });
  t.throws(() => originTag('r'.repeat(58)), { code: 'ERR_REGION_INVALID' }, 'the tag would be too long');
  t.same(factsOf('catalog', 'k', ['pii', 'origin:us-east', 'b', 'origin:eu-west', 'pii']), {
    dataset: 'catalog',
    key: 'k',
    tags: ['b', 'pii'],
    origin: 'eu-west',
  });
  t.same(factsOf('catalog', 'k', ['pii']), { dataset: 'catalog', key: 'k', tags: ['pii'], origin: null });
  t.same(reservedTagPrefixes, ['origin:']);
  t.throws(() => checkUserTags(['ok', 'origin:eu-west']), {
    code: 'ERR_TAG_INVALID',
    message: 'tag "origin:eu-west" is reserved: tags starting with origin: are written by the store',
  });
  t.throws(() => checkUserTags(['Not OK']), { code: 'ERR_TAG_INVALID' });
  t.doesNotThrow(() => checkUserTags(['pii', 'residency:eu']));
});

t.test('assertMayHold refuses with ERR_POLICY_DENIED (421) and lists the regions that may', async (t) => {
  const doc = factsOf('orders', 'o1', ['shared', originTag('eu-west')]);
  t.doesNotThrow(() => assertMayHold(main, doc, 'eu-central'));
  try {
    assertMayHold(main, factsOf('orders', 'o1', [originTag('eu-west')]), 'us-west');
    t.fail('expected a refusal');
  } catch (error) {
    const { code, status, message } = error as TesseraError;
    t.same(
      { code, status, message },
      {
        code: 'ERR_POLICY_DENIED',
        status: 421,
        message: 'region "us-west" may not hold this document of dataset orders under policy v3 (placement): the regions that may are eu-west, us-east',
      },
    );
  }
  t.throws(() => assertMayHold(main, factsOf('catalog', 'c', ['pii', originTag('eu-west')]), 'us-east'), {
    message:
      'region "us-east" may not hold this document of dataset catalog under policy v3 (rule "pii stays in its jurisdiction"): the regions that may are eu-central, eu-west',
  });
  t.throws(() => assertMayHold(keyed, factsOf('visits', 'v', [originTag('eu-west')]), 'eu-west'), {
    message: 'region "eu-west" may not hold this document of dataset visits under policy v1 (refused-dataset): no region may',
  });
});
