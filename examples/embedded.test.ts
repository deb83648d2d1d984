// Goal: the embedded example in the README runs and shows what it claims: two replicas written
// concurrently converge through deltasSince/applyDeltas, and the concurrent overwrite leaves a conflict record.
// Method: run the example's function and check what it observed.
import t from 'tap';
import { runExample } from './embedded.js';

t.test('embedded example converges and records the conflict', async (t) => {
  const lines: string[] = [];
  const result = await runExample((line) => lines.push(line));
  t.same(result.profiles[0], result.profiles[1], 'profiles converge');
  t.same(result.profiles[0], { name: 'Ada', city: 'Boston', plan: 'pro' }, 'field-level merge; the later concurrent city wins');
  t.same(result.visits, [7, 7], 'counters converge');
  t.same(
    result.carts,
    [
      ['book', 'lamp'],
      ['book', 'lamp'],
    ],
    'sets converge',
  );
  t.equal(result.notes[0], result.notes[1], 'Yjs texts converge');
  t.match(result.notes[0], /Hello from EU/);
  t.match(result.notes[0], /Hello from US/);
  t.same(result.tags, ['pii']);
  t.equal(result.conflicts.length, 2, 'each region recorded the conflict');
  for (const c of result.conflicts) {
    t.same(c.path, ['city']);
    t.equal(c.winner.value, 'Boston');
    t.equal(c.loser.value, 'Cork');
  }
  t.ok(
    lines.some((line) => line.includes('recorded a conflict')),
    'the example prints the conflict',
  );
});
