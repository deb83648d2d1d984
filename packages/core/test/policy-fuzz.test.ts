// Goal: whatever text it is given, `parsePolicy` either returns a policy or refuses it the documented way —
// `ERR_POLICY_INVALID` or `ERR_POLICY_RULE_INVALID` (status 400), every problem on its own line as
// `source:line:col: …` at a position inside the text — and never throws anything else (a bug in the checker,
// a CEL library error leaking out) or hangs. A policy it accepts has a canonical form that is itself a valid
// policy text with the same canonical form.
// Method: fast-check with a fixed seed (POLICY_FUZZ_SEED reproduces a run) over three kinds of input: the
// valid example mutated character by character and line by line, random YAML-ish text, and the example with a
// random CEL expression (from a small grammar of the policy's variables, operators and functions, and raw
// random characters) put in a rule or a home placement, quoted in each YAML style. Run counts are bounded so
// the file stays well under ten seconds on a shared machine.
import t from 'tap';
import fc from 'fast-check';
import { Policy, TesseraError, parsePolicy, policyBytesMax } from '@tessera/core';
import { examplePolicyText } from './helpers/policy.js';

/** The type of a subtest's `t`. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const seed = Number(process.env.POLICY_FUZZ_SEED ?? 20_250_611);
const source = 'fuzz.yaml';

const example = examplePolicyText;

const problemLine = new RegExp(`^${source.replace('.', '\\.')}:(\\d+):(\\d+): .*\\S`);
const moreLine = /^\(and \d+ more problems\)$/;

/**
 * What `parsePolicy(text)` did, checked against the contract: the policy, or the refusal's code and positions.
 * Any other outcome fails the property with a message that shows the input.
 */
function judge(text: string): { policy: Policy } | { code: string; positions: Array<{ line: number; col: number }>; message: string } {
  let policy: Policy;
  try {
    policy = parsePolicy(text, source);
  } catch (error) {
    if (!(error instanceof TesseraError)) {
      throw new Error(
        `parsePolicy threw ${(error as Error)?.name ?? typeof error}: ${(error as Error)?.message ?? String(error)}\ninput: ${JSON.stringify(text)}`,
      );
    }
    if (error.code !== 'ERR_POLICY_INVALID' && error.code !== 'ERR_POLICY_RULE_INVALID') {
      throw new Error(`parsePolicy threw ${error.code}: ${error.message}\ninput: ${JSON.stringify(text)}`);
    }
    if (error.status !== 400) throw new Error(`${error.code} with status ${error.status}`);
    if (/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/.test(error.message)) {
      throw new Error(
        `the message holds a control character or line separator besides the line breaks between problems: ${JSON.stringify(error.message)}\ninput: ${JSON.stringify(text)}`,
      );
    }
    const lines = error.message.split('\n');
    const lineCount = text.split(/\r\n|\r|\n/).length;
    const positions: Array<{ line: number; col: number }> = [];
    lines.forEach((messageLine, i) => {
      if (i === lines.length - 1 && i > 0 && moreLine.test(messageLine)) return;
      const match = problemLine.exec(messageLine);
      if (match === null) {
        throw new Error(
          `problem line ${i} has no ${source}:line:col: ${JSON.stringify(messageLine)}\nmessage: ${error.message}\ninput: ${JSON.stringify(text)}`,
        );
      }
      const position = { line: Number(match[1]), col: Number(match[2]) };
      if (position.line < 1 || position.line > lineCount || position.col < 1) {
        throw new Error(
          `position ${position.line}:${position.col} is outside the text (${lineCount} lines): ${JSON.stringify(messageLine)}\ninput: ${JSON.stringify(text)}`,
        );
      }
      positions.push(position);
    });
    return { code: error.code, positions, message: error.message };
  }
  if (!(policy instanceof Policy)) throw new Error('parsePolicy returned something other than a Policy');
  if (!Number.isSafeInteger(policy.version) || policy.version < 1) throw new Error(`accepted version ${policy.version}`);
  // The canonical form is a policy text too, and a fixed point.
  let again: Policy;
  try {
    again = parsePolicy(policy.canonical, 'canonical');
  } catch (error) {
    throw new Error(
      `the canonical form of an accepted policy is refused: ${(error as Error).message}\ninput: ${JSON.stringify(text)}\ncanonical: ${policy.canonical}`,
    );
  }
  if (again.canonical !== policy.canonical) throw new Error(`the canonical form is not a fixed point\ninput: ${JSON.stringify(text)}`);
  return { policy };
}

// ---------------------------------------------------------------- mutations of the valid example

/** Characters that matter to YAML, JSON or CEL, plus some ordinary and unusual ones. */
const alphabet = [
  ...':{}[],#&*!|>\'"%@`-?\\/ \t\n\r'.split(''),
  ...'abcdeglmnoprstuvxyz0123456789._'.split(''),
  '\u0000',
  '\u0085',
  '\u00a0',
  '\u2028',
  '\ufeff',
  'é',
  '\ud83d\ude00',
  '\ud800',
];
const charArb = fc.constantFrom(...alphabet);

type Mutation = (text: string) => string;

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.tuple(fc.nat(), charArb).map(
    ([at, c]): Mutation =>
      (text) => {
        const i = at % (text.length + 1);
        return text.slice(0, i) + c + text.slice(i);
      },
  ),
  fc.nat().map(
    (at): Mutation =>
      (text) => {
        if (text.length === 0) return text;
        const i = at % text.length;
        return text.slice(0, i) + text.slice(i + 1);
      },
  ),
  fc.tuple(fc.nat(), charArb).map(
    ([at, c]): Mutation =>
      (text) => {
        if (text.length === 0) return c;
        const i = at % text.length;
        return text.slice(0, i) + c + text.slice(i + 1);
      },
  ),
  fc.nat().map(
    (at): Mutation =>
      (text) =>
        text.slice(0, at % (text.length + 1)),
  ),
  fc.nat().map(
    (at): Mutation =>
      (text) => {
        const lines = text.split('\n');
        lines.splice(at % lines.length, 1);
        return lines.join('\n');
      },
  ),
  fc.nat().map(
    (at): Mutation =>
      (text) => {
        const lines = text.split('\n');
        const i = at % lines.length;
        lines.splice(i, 0, lines[i]!);
        return lines.join('\n');
      },
  ),
  fc.tuple(fc.nat(), fc.nat()).map(
    ([a, b]): Mutation =>
      (text) => {
        const lines = text.split('\n');
        const i = a % lines.length;
        const j = b % lines.length;
        [lines[i], lines[j]] = [lines[j]!, lines[i]!];
        return lines.join('\n');
      },
  ),
  fc.tuple(fc.nat(), fc.integer({ min: -4, max: 4 })).map(
    ([at, shift]): Mutation =>
      (text) => {
        const lines = text.split('\n');
        const i = at % lines.length;
        lines[i] = shift >= 0 ? ' '.repeat(shift) + lines[i] : lines[i]!.replace(new RegExp(`^ {0,${-shift}}`), '');
        return lines.join('\n');
      },
  ),
  // A token that is valid somewhere, put where it may not be.
  fc
    .tuple(
      fc.nat(),
      fc.constantFrom(
        'global',
        'local',
        'regions',
        'home',
        'within',
        'jurisdiction',
        'eu-north',
        '0',
        '-1',
        '1.5',
        '99999999999999999999',
        'null',
        'true',
        '~',
        '[]',
        '{}',
        '*a',
        '&a',
        '!!str',
        'doc.key',
        'version: 8',
        'cadence: 1ms',
        'type: graph',
        "'x'",
        '"\\u00e9"',
        '|',
        '>-',
      ),
    )
    .map(
      ([at, token]): Mutation =>
        (text) => {
          const i = at % (text.length + 1);
          return text.slice(0, i) + token + text.slice(i);
        },
    ),
);

t.test('mutations of a valid policy: a policy, or a positioned ERR_POLICY_INVALID/ERR_POLICY_RULE_INVALID', async (t: Test) => {
  const outcomes = { accepted: 0, invalid: 0, ruleInvalid: 0 };
  fc.assert(
    fc.property(fc.array(mutationArb, { minLength: 1, maxLength: 6 }), (mutations) => {
      const text = mutations.reduce((current, mutate) => mutate(current), example);
      const outcome = judge(text);
      if ('policy' in outcome) outcomes.accepted++;
      else if (outcome.code === 'ERR_POLICY_INVALID') outcomes.invalid++;
      else outcomes.ruleInvalid++;
    }),
    { seed, numRuns: 1_000 },
  );
  // The mutations must exercise both outcomes, or the property says little.
  t.ok(
    outcomes.accepted > 0 && outcomes.invalid > 0 && outcomes.ruleInvalid > 0,
    `accepted ${outcomes.accepted}, invalid ${outcomes.invalid}, rule invalid ${outcomes.ruleInvalid}; reproduce with POLICY_FUZZ_SEED=${seed}`,
  );
});

t.test('random YAML-ish and JSON texts: a policy, or a positioned refusal', async (t: Test) => {
  const yamlish = fc
    .array(fc.oneof(charArb, fc.constantFrom('version', 'regions', 'datasets', 'rules', 'placement', 'name', 'deny', ': ', '\n  ', '- ')), { maxLength: 120 })
    .map((parts) => parts.join(''));
  const jsonish = fc.oneof(
    fc.jsonValue().map((value) => JSON.stringify(value)),
    fc
      .record({ version: fc.jsonValue(), regions: fc.jsonValue(), datasets: fc.jsonValue(), rules: fc.jsonValue() }, { requiredKeys: [] })
      .map((value) => JSON.stringify(value)),
  );
  let refused = 0;
  fc.assert(
    fc.property(fc.oneof(yamlish, jsonish), (text) => {
      if (!('policy' in judge(text))) refused++;
    }),
    { seed, numRuns: 1_000 },
  );
  t.ok(refused > 0, `${refused} of 1000 refused; reproduce with POLICY_FUZZ_SEED=${seed}`);
});

// ---------------------------------------------------------------- random CEL expressions

const ruleVariables = [
  'doc.dataset',
  'doc.key',
  'doc.tags',
  'doc.origin',
  'doc.home',
  'source.name',
  'source.jurisdiction',
  'source.location',
  'target.name',
  'target.jurisdiction',
  'target.location',
  'doc',
  'target',
  'doc.nothing',
  'other',
];
const literals = [
  "'pii'",
  "'eu-west'",
  '"x"',
  "''",
  '1',
  '0',
  '-1',
  '2.5',
  'true',
  'false',
  'null',
  '[]',
  "['a', 'b']",
  '{}',
  "{'a': 1}",
  'b"x"',
  "r'\\d+'",
  "'\\u00e9'",
  "'''tri'''",
];

const celArb: fc.Arbitrary<string> = fc.letrec<{ expr: string }>((tie) => ({
  expr: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(...ruleVariables, ...literals),
    fc
      .tuple(tie('expr'), fc.constantFrom('&&', '||', '==', '!=', '<', '>=', 'in', '+', '-', '*', '/', '%'), tie('expr'))
      .map(([a, op, b]) => `${a} ${op} ${b}`),
    fc.tuple(fc.constantFrom('!', '-', '('), tie('expr')).map(([op, a]) => (op === '(' ? `(${a})` : `${op}${a}`)),
    fc.tuple(tie('expr'), tie('expr'), tie('expr')).map(([a, b, c]) => `${a} ? ${b} : ${c}`),
    fc
      .tuple(fc.constantFrom('size', 'has', 'string', 'int', 'type', 'matches', 'exists', 'dyn', 'nope'), fc.array(tie('expr'), { maxLength: 2 }))
      .map(([f, args]) => `${f}(${args.join(', ')})`),
    fc
      .tuple(
        tie('expr'),
        fc.constantFrom('startsWith', 'endsWith', 'contains', 'matches', 'size', 'exists', 'all', 'map', 'filter'),
        fc.array(tie('expr'), { maxLength: 2 }),
      )
      .map(([target, f, args]) => `${target}.${f}(${args.join(', ')})`),
    fc.tuple(tie('expr'), fc.constantFrom('x', 't')).map(([e, v]) => `doc.tags.exists(${v}, ${e})`),
    fc.tuple(tie('expr'), tie('expr')).map(([a, b]) => `${a}[${b}]`),
    fc
      .tuple(fc.constantFrom("'[a-z'", "'(?<'", "'^eu-'", "'*'", "'\\\\'"), fc.boolean())
      .map(([pattern, method]) => (method ? `doc.key.matches(${pattern})` : `matches(doc.key, ${pattern})`)),
    fc.array(charArb, { maxLength: 12 }).map((chars) => chars.join('')),
  ),
})).expr;

/** A YAML scalar of `expression` in one of the styles a policy author may use. */
function yamlScalar(expression: string, style: 'double' | 'single' | 'plain' | 'literal', indent: string): string {
  switch (style) {
    case 'double':
      return JSON.stringify(expression);
    case 'single':
      return `'${expression.replaceAll("'", "''")}'`;
    case 'plain':
      return expression;
    case 'literal':
      return `|\n${expression
        .split('\n')
        .map((line) => `${indent}  ${line}`)
        .join('\n')}`;
  }
}

const styleArb = fc.constantFrom('double', 'single', 'plain', 'literal') as fc.Arbitrary<'double' | 'single' | 'plain' | 'literal'>;

t.test("random CEL expressions in rules: accepted, or refused at a position on the rule's lines", async (t: Test) => {
  const outcomes = { accepted: 0, ruleInvalid: 0, invalid: 0 };
  fc.assert(
    fc.property(celArb, fc.constantFrom('deny', 'allow', 'release'), styleArb, (expression, effect, style) => {
      const before = example.split('\n').length - 1;
      const text = `${example}  - name: fuzzed\n    ${effect}: ${yamlScalar(expression, style, '    ')}\n`;
      const outcome = judge(text);
      if ('policy' in outcome) {
        outcomes.accepted++;
        const rule = outcome.policy.rules.find((r) => r.name === 'fuzzed');
        if (rule === undefined || rule.effect !== effect) throw new Error(`the fuzzed rule is missing: ${JSON.stringify(text)}`);
        return;
      }
      if (outcome.code === 'ERR_POLICY_INVALID') {
        outcomes.invalid++;
        return;
      }
      outcomes.ruleInvalid++;
      // Only the fuzzed rule can be wrong: every problem names it and lies on its lines.
      if (!outcome.message.includes('(rule "fuzzed")')) throw new Error(`the refusal does not name the rule: ${outcome.message}`);
      for (const { line } of outcome.positions) {
        if (line <= before)
          throw new Error(`problem at line ${line}, before the fuzzed rule (line ${before + 1}): ${outcome.message}\ninput: ${JSON.stringify(text)}`);
      }
    }),
    { seed, numRuns: 800 },
  );
  t.ok(
    outcomes.accepted > 0 && outcomes.ruleInvalid > 0,
    `accepted ${outcomes.accepted}, rule invalid ${outcomes.ruleInvalid}, invalid YAML ${outcomes.invalid}; reproduce with POLICY_FUZZ_SEED=${seed}`,
  );
});

t.test('random CEL expressions as a home placement: a policy whose home is the expression, or a positioned refusal', async (t: Test) => {
  const homeArb = fc.oneof(
    celArb,
    fc.constantFrom('doc.origin', "doc.key.startsWith('us') ? 'us-east' : 'eu-west'", 'source.name', 'doc.home', 'doc.tags[0]', "'eu-' + 'west'"),
  );
  let accepted = 0;
  fc.assert(
    fc.property(homeArb, fc.constantFrom('double', 'single') as fc.Arbitrary<'double' | 'single'>, (expression, style) => {
      const text = example.replace('home: doc.origin', `home: ${yamlScalar(expression, style, '')}`);
      const outcome = judge(text);
      if ('policy' in outcome) {
        accepted++;
        const placement = outcome.policy.datasets.get('profiles')?.placement;
        if (placement?.kind !== 'home' || placement.home !== expression.trim()) throw new Error(`the home expression was not kept: ${JSON.stringify(text)}`);
      } else if (outcome.code === 'ERR_POLICY_RULE_INVALID' && !outcome.message.includes('(dataset profiles)')) {
        throw new Error(`the refusal does not name the dataset: ${outcome.message}`);
      }
    }),
    { seed, numRuns: 400 },
  );
  t.ok(accepted > 0, `${accepted} of 400 home expressions accepted; reproduce with POLICY_FUZZ_SEED=${seed}`);
});

t.test("regression: a name with a line break or control character stays on its problem's line, escaped", async (t: Test) => {
  // Found by the random texts above: field, region and dataset names were written into problems raw, so one
  // problem became two lines, the second without a position (and a log line could be forged).
  const cases: Array<[string, string, RegExp]> = [
    [
      'unknown top-level field',
      '"a\\nb": 1\nversion: 1\nregions: { eu-west: { jurisdiction: eu } }\ndatasets: {}\n',
      /^fuzz\.yaml:1:1: a\\u000ab: unknown field/,
    ],
    ['region name', 'version: 1\nregions:\n  "eu\\nwest": { jurisdiction: eu }\ndatasets: {}\n', /^fuzz\.yaml:3:3: regions\.eu\\u000awest "eu\\nwest": /],
    [
      'dataset field',
      'version: 1\nregions: { eu-west: { jurisdiction: eu } }\ndatasets:\n  x: { placement: global, "p\\u2028q": 1 }\n',
      /^fuzz\.yaml:4:27: datasets\.x\.p\\u2028q: unknown field in datasets\.x/,
    ],
    [
      'a bad region listed in another problem',
      'version: 1\nregions:\n  "a\\tb": { jurisdiction: eu }\ndatasets:\n  x: { placement: { regions: [nowhere] } }\n',
      /not a region of this policy \(regions: a\\u0009b\)/m,
    ],
  ];
  for (const [what, text, expected] of cases) {
    const outcome = judge(text);
    if ('policy' in outcome) {
      t.fail(`${what}: accepted`);
      continue;
    }
    t.match(outcome.message, expected, what);
    t.equal(outcome.message.split('\n').length, outcome.positions.length, `${what}: one line per problem, each with its position`);
  }
});

t.test('regression: a policy text of many keys, up to the size limit, is refused in linear time', { timeout: 60_000 }, async (t: Test) => {
  // Found while probing for hangs: the YAML library checked each key against every earlier key of its map, so
  // a 1 MiB text of 100k short keys (a POST /v1/policy body, a peer's policy frame) kept a core busy for over a
  // minute. Duplicates are now found with a set per map; this text parses in a few seconds at most, and the
  // duplicate is still reported where it is. (A quadratic parser would run into the test's timeout.)
  const lines: string[] = [];
  let bytes = 0;
  for (let i = 0; bytes < policyBytesMax - 64; i++) {
    const line = `k${i}: 1`;
    lines.push(line);
    bytes += line.length + 1;
  }
  lines.push('k7: 2');
  const outcome = judge(lines.join('\n'));
  if ('policy' in outcome) return void t.fail('accepted');
  t.equal(outcome.code, 'ERR_POLICY_INVALID');
  t.match(outcome.message, new RegExp(`^fuzz\\.yaml:${lines.length}:1: YAML: Map keys must be unique$`, 'm'), 'the repeated key is reported at its line');
});

t.test('regression: a list of 200k items is refused with a code, not a stack overflow', async (t: Test) => {
  // Found while probing for hangs: the walk that refuses YAML aliases spread a list's items into one push()
  // call, and a 400 KB flow list overflowed the call stack (a RangeError instead of ERR_POLICY_INVALID).
  const outcome = judge(`version: 1\nregions: [${Array.from({ length: 200_000 }, () => '1').join(',')}]\ndatasets: {}\n`);
  if ('policy' in outcome) return void t.fail('accepted');
  t.equal(outcome.code, 'ERR_POLICY_INVALID');
  t.match(outcome.message, /^fuzz\.yaml:2:10: regions \(a list\): regions must be a map/m);
});
