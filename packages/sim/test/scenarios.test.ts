// Goal: targeted simulation scenarios — one kind of fault at a time — and the harness itself: a seed replays
// the same run, and the checks do catch what they claim to catch (a check that cannot fail is a defect).
// Method: runSimulation with some faults switched off, twice with one seed for determinism; the Checker fed
// by hand with a violation of each kind it checks at the end.
import t from 'tap';
import { emptyDoc, mutate, operationMutator, type DocState } from '@tessera/core';
import { Checker, allFaults, noFaults, runSimulation, type FaultOptions } from '@tessera/sim';

async function scenario(
  t: { ok(value: unknown, message: string): void },
  name: string,
  seed: number,
  faults: Partial<FaultOptions>,
  steps = 60,
): Promise<void> {
  const result = await runSimulation({ seed, steps, faults, nodes: 3 });
  t.ok(result.ok, result.ok ? `${name}: seed ${seed} passed` : result.report);
  t.ok(result.convergedAfterMs !== null, `${name}: converged; reproduce: ${result.reproduce}`);
}

t.test('a seed replays the same run (same events, same final states)', async (t) => {
  const a = await runSimulation({ seed: 7, steps: 40, nodes: 3, faults: { ...allFaults, policyChanges: false } });
  const b = await runSimulation({ seed: 7, steps: 40, nodes: 3, faults: { ...allFaults, policyChanges: false } });
  t.equal(a.events, b.events, 'same number of events');
  t.equal(a.digest, b.digest, `same digest (${a.digest})`);
  const c = await runSimulation({ seed: 8, steps: 40, nodes: 3, faults: { ...allFaults, policyChanges: false } });
  t.not(c.digest, a.digest, 'another seed, another run');
});

t.test('no faults: the baseline converges', (t) => scenario(t, 'baseline', 21, noFaults));
t.test('crashes only (between operations and in the middle of their storage writes)', (t) =>
  scenario(t, 'crashes', 22, { ...noFaults, crashes: true, midOpCrashes: true }, 80),
);
t.test('message faults and partitions only', (t) => scenario(t, 'network', 23, { ...noFaults, messages: true, partitions: true }, 80));
t.test('clock skew and jumps only (an hour back and forth)', (t) => scenario(t, 'clocks', 24, { ...noFaults, clocks: true }));
t.test('tag changes only (quarantine, release, pii, shared, move)', (t) => scenario(t, 'tags', 25, { ...noFaults, tagChanges: true }, 80));

/** A copy of notes/k that saw the writes of `writers` (node, count): a put each, the first creating it in eu-west. */
function docWith(writers: Array<[string, number]>): DocState {
  let doc = emptyDoc('lww');
  let ms = 10;
  for (const [node, count] of writers) {
    for (let i = 0; i < count; i++) {
      const region = node === 'a' ? 'eu-west' : 'us-east';
      doc = mutate(doc, node, { ms: ms++, c: 0 }, operationMutator('lww', { op: 'put', value: `${node}${i}` }, 'notes/k'), undefined, {
        region,
        type: 'lww',
      })!.state;
    }
  }
  return doc;
}

t.test('the checks catch what they claim to', async (t) => {
  const checker = new Checker((node) => (node === 'a' ? 'eu-west' : 'us-east'), ['a', 'b']);
  const write = { node: 'a', dataset: 'notes', key: 'k', dot: ['a', 1] as [string, number], hlc: { ms: 10, c: 0 }, atMs: 1, kind: 'put' };
  checker.ackedWrite(write);
  checker.ackedWrite({ ...write, hlc: { ms: 11, c: 0 } });
  t.match(checker.failures.join('\n'), /unique dots: dot notes\/k a:1 was issued twice/, 'a dot issued twice');
  checker.ackedWrite({ ...write, key: 'k2', hlc: { ms: 5, c: 0 } });
  t.match(checker.failures.join('\n'), /monotonic: .* got HLC 5\.0, not after/, 'an HLC that went back');
  const { parsePolicy } = await import('@tessera/core');
  const policy = parsePolicy(
    'version: 1\nregions:\n  eu-west: { jurisdiction: eu }\n  us-east: { jurisdiction: us }\ndatasets:\n  notes: { type: lww, placement: global }\n',
    'test',
  );
  const lost = checker.finalChecks(new Map(), policy, 100);
  t.match(lost.join('\n'), /lost write: the acknowledged put of notes\/k at a/, 'a write in no copy');
  const diverged = checker.finalChecks(
    new Map([
      [
        'notes/k',
        new Map([
          ['a', docWith([['a', 1]])],
          [
            'b',
            docWith([
              ['a', 1],
              ['b', 1],
            ]),
          ],
        ]),
      ],
    ]),
    policy,
    100,
  );
  t.match(diverged.join('\n'), /convergence: a's copy of notes\/k differs/, 'copies that differ');
  const missing = checker.finalChecks(new Map([['notes/k', new Map([['a', docWith([['a', 1]])]])]]), policy, 100);
  t.match(missing.join('\n'), /convergence: b may hold notes\/k .* but holds nothing/, 'an allowed region without a copy');
});
