// Goal: the hybrid logical clock never goes backwards and moves past what it observes.
// Method: drive it with wall times that jump back and forth, and with remote timestamps ahead of the wall.
import t from 'tap';
import { HlcClock, compareHlc, hlcCounterMax } from '@tessera/core';

t.test('issues strictly increasing timestamps even when the wall clock goes back', async (t) => {
  const clock = new HlcClock();
  const walls = [100, 100, 50, 200, 199, 0, 200];
  let last = clock.latest;
  for (const wall of walls) {
    const next = clock.now(wall);
    t.ok(compareHlc(next, last) > 0, `timestamp after wall ${wall} is later`);
    last = next;
  }
});

t.test('moves past an observed remote timestamp', async (t) => {
  const clock = new HlcClock();
  clock.observe({ ms: 10_000, c: 7 });
  const next = clock.now(5_000);
  t.same(next, { ms: 10_000, c: 8 });
});

t.test('borrows a millisecond when the logical counter is exhausted', async (t) => {
  const clock = new HlcClock({ ms: 42, c: hlcCounterMax });
  t.same(clock.now(42), { ms: 43, c: 0 });
});
