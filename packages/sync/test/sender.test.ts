// Goal: the link's sending side streams the log in order, keeps the window of unacknowledged batches,
// advances its cursor only on matching acknowledgements, never sends entries back to their origin, respects
// the rate limit, and ignores reads made stale by a reconnect.
// Method: drive the pure state machine with a fake log and a manual clock; check the effects it returns.
import t from 'tap';
import { type LogEntry } from '@tessera/store';
import { LinkSender, RateGate, type SenderEffect, backoffMs, backoffMsMax, CadenceController, windowBatchesInitial, windowBatchesMax } from '@tessera/sync';

function log(count: number, origin: (i: number) => string = (i) => (i % 3 === 0 ? 'peer' : 'self')): LogEntry[] {
  return Array.from({ length: count }, (_, i) => ({
    seq: i + 1,
    dataset: 'd',
    key: `k${i}`,
    origin: origin(i + 1),
    originSeq: i + 1,
    hlc: { ms: 1000 + i, c: 0 },
    delta: new Uint8Array(100),
  }));
}

const unlimited = { bytesPerSecondMax: null, entriesPerSecondMax: null };

/** Runs effects against the fake log until quiet; returns the sends and persisted cursors. */
function drive(sender: LinkSender, entries: LogEntry[], effects: SenderEffect[], nowMs: number, ackAll: boolean) {
  const sends: Extract<SenderEffect, { kind: 'send' }>[] = [];
  const cursors: number[] = [];
  const queue = [...effects];
  let guard = 0;
  while (queue.length > 0 && guard++ < 10_000) {
    const effect = queue.shift()!;
    if (effect.kind === 'read') {
      const read = entries.filter((e) => e.seq > effect.after).slice(0, effect.limit);
      queue.push(...sender.step({ kind: 'read', after: effect.after, entries: read, head: entries.length }, nowMs));
    } else if (effect.kind === 'send') {
      sends.push(effect);
      if (ackAll) queue.push(...sender.step({ kind: 'ack', id: effect.id, last: effect.last }, nowMs));
    } else if (effect.kind === 'persist-cursor') cursors.push(effect.cursor);
  }
  return { sends, cursors };
}

t.test('streams everything after the cursor, skipping entries that came from the peer', async (t) => {
  const entries = log(30);
  const sender = new LinkSender('peer', 'self', false, unlimited, 0);
  const { sends, cursors } = drive(sender, entries, sender.step({ kind: 'open', cursor: 5, head: 30 }, 0), 0, true);
  const sentSeqs = sends.flatMap((s) => s.entries.map((e) => e.seq));
  t.same(
    sentSeqs,
    entries.filter((e) => e.seq > 5 && e.origin !== 'peer').map((e) => e.seq),
    'in order, none from the peer',
  );
  t.equal(cursors.at(-1), 30, 'cursor reaches the head');
  t.equal(sender.stats.skippedEntries, entries.filter((e) => e.seq > 5 && e.origin === 'peer').length);
});

// Goal: a third node's entries go to a peer only when it lacks them and reports its link to their origin down;
// entries skipped while that link was up are forwarded after all if it goes down before they arrive.
t.test('forwarding: only to a peer that lacks the entry and cannot get it directly; rewind on a late outage', async (t) => {
  const entries = log(9, (i) => ['self', 'third', 'peer'][i % 3]!);
  const thirdSeqs = entries.filter((e) => e.origin === 'third').map((e) => e.seq);
  const plain = new LinkSender('peer', 'self', false, unlimited, 0);
  const direct = drive(plain, entries, plain.step({ kind: 'open', cursor: 0, head: 9 }, 0), 0, true);
  t.same([...new Set(direct.sends.flatMap((s) => s.entries.map((e) => e.origin)))], ['self'], 'forwarding off: own entries only');

  const healthy = new LinkSender('peer', 'self', true, unlimited, 0);
  healthy.step({ kind: 'peer-state', have: {}, down: [] }, 0);
  const once = drive(healthy, entries, healthy.step({ kind: 'open', cursor: 0, head: 9 }, 0), 0, true);
  t.same([...new Set(once.sends.flatMap((s) => s.entries.map((e) => e.origin)))], ['self'], 'healthy mesh: the origin sends its own, nobody forwards');
  // The peer then loses its link to 'third' before it got those entries: the sender rewinds and forwards them.
  const rewound = drive(healthy, entries, healthy.step({ kind: 'peer-state', have: { third: 0 }, down: ['third'] }, 1), 1, true);
  t.same(
    rewound.sends.flatMap((s) => s.entries.filter((e) => e.origin === 'third').map((e) => e.seq)),
    thirdSeqs,
    'the skipped third-origin entries are forwarded after the outage',
  );
  t.equal(healthy.stats.rewinds, 1);

  const outage = new LinkSender('peer', 'self', true, unlimited, 0);
  outage.step({ kind: 'peer-state', have: { third: 2 }, down: ['third'] }, 0);
  const forwarded = drive(outage, entries, outage.step({ kind: 'open', cursor: 0, head: 9 }, 0), 0, true);
  t.same(
    forwarded.sends.flatMap((s) => s.entries.filter((e) => e.origin === 'third').map((e) => e.seq)),
    thirdSeqs.filter((seq) => seq > 2),
    'during an outage: only what the peer lacks',
  );
});

// Goal: a change without an origin sequence number (a state joined here, facts a head taught this copy) is in
// no origin's stream, so the node that logged it sends it on whatever the forwarding rules; never to its origin.
t.test('an unsequenced change of a third origin is sent on, forwarding on or off; never back to its origin', async (t) => {
  const entries = log(6, (i) => ['self', 'third', 'peer'][i % 3]!).map((e) => (e.origin === 'self' ? e : { ...e, originSeq: 0 }));
  for (const forward of [false, true]) {
    const sender = new LinkSender('peer', 'self', forward, unlimited, 0);
    sender.step({ kind: 'peer-state', have: { third: 10 }, down: [] }, 0);
    const { sends } = drive(sender, entries, sender.step({ kind: 'open', cursor: 0, head: 6 }, 0), 0, true);
    const sent = sends.flatMap((s) => s.entries);
    t.same(
      sent.filter((e) => e.origin === 'third').map((e) => e.seq),
      entries.filter((e) => e.origin === 'third').map((e) => e.seq),
      `forwarding ${forward ? 'on' : 'off'}: the third origin's unsequenced changes go`,
    );
    t.notOk(
      sent.some((e) => e.origin === 'peer'),
      'none goes back to its origin',
    );
  }
});

t.test('keeps at most the window of batches unacknowledged; an ack opens room', async (t) => {
  const entries = log(40_000, () => 'self');
  const sender = new LinkSender('peer', 'self', false, unlimited, 0);
  const { sends } = drive(sender, entries, sender.step({ kind: 'open', cursor: 0, head: 40_000 }, 0), 0, false);
  const window = sender.snapshot(0).windowBatches;
  t.equal(sends.length, window, `without acks, exactly the window (${window}) of batches is in flight`);
  const more = drive(sender, entries, sender.step({ kind: 'ack', id: sends[0]!.id, last: sends[0]!.last }, 10), 10, false);
  t.ok(more.sends.length >= 1, 'an ack lets more go');
  t.same(more.cursors, [sends[0]!.last], 'the cursor moves to the acknowledged batch');
});

t.test('an acknowledgement that does not match the oldest batch is a protocol error', async (t) => {
  const entries = log(10, () => 'self');
  const sender = new LinkSender('peer', 'self', false, unlimited, 0);
  const { sends } = drive(sender, entries, sender.step({ kind: 'open', cursor: 0, head: 10 }, 0), 0, false);
  const effects = sender.step({ kind: 'ack', id: sends[0]!.id + 7, last: 3 }, 1);
  t.equal(effects[0]?.kind, 'protocol-error');
  t.equal(sender.snapshot(1).cursor, 0, 'the cursor did not move');
});

t.test('the rate limit delays batches instead of exceeding it', async (t) => {
  const entries = log(50, () => 'self');
  const sender = new LinkSender('peer', 'self', false, { bytesPerSecondMax: 1000, entriesPerSecondMax: null }, 0);
  const first = drive(sender, entries, sender.step({ kind: 'open', cursor: 0, head: 50 }, 0), 0, true);
  const sentBytes = first.sends.reduce((sum, s) => sum + s.bytes, 0);
  t.ok(sentBytes <= 1000, `the first instant sends at most one bucket's worth (${sentBytes} bytes)`);
  t.ok(sender.snapshot(0).waitingForRateMs !== null, 'a wake-up is armed for the rest');
  // Over simulated time the rate stays within the limit: 5000 bytes need about 4 more seconds.
  let nowMs = 0;
  let total = sentBytes;
  while (total < 5000 && nowMs < 60_000) {
    nowMs += 100;
    total += drive(sender, entries, sender.step({ kind: 'tick' }, nowMs), nowMs, true).sends.reduce((sum, s) => sum + s.bytes, 0);
  }
  t.equal(total, 5000, 'everything is sent eventually');
  t.ok(nowMs >= 4000, `at 1000 bytes/s with a 1000-byte burst, 5000 bytes took ${nowMs} ms (≥ 4000)`);
});

t.test('a read made stale by a reconnect is ignored', async (t) => {
  const entries = log(10, () => 'self');
  const sender = new LinkSender('peer', 'self', false, unlimited, 0);
  const effects = sender.step({ kind: 'open', cursor: 0, head: 10 }, 0);
  t.equal(effects[0]?.kind, 'read');
  sender.step({ kind: 'closed' }, 1);
  const reopened = sender.step({ kind: 'open', cursor: 4, head: 10 }, 2);
  const stale = sender.step({ kind: 'read', after: 0, entries, head: 10 }, 3);
  t.same(
    stale.filter((e) => e.kind === 'send'),
    [],
    'nothing sent from the stale read',
  );
  const { sends } = drive(sender, entries, reopened, 4, true);
  t.equal(sends[0]?.entries[0]?.seq, 5, 'streaming resumes from the new cursor');
});

t.test('an empty read (head counted uncommitted writes) does not spin', async (t) => {
  const sender = new LinkSender('peer', 'self', false, unlimited, 0);
  const effects = sender.step({ kind: 'open', cursor: 0, head: 3 }, 0);
  const after = sender.step({ kind: 'read', after: 0, entries: [], head: 3 }, 1);
  t.same(after, [], 'no new read until something is appended');
  t.same(
    sender.step({ kind: 'appended', head: 4 }, 2).map((e) => e.kind),
    ['read'],
  );
  t.equal(effects.length, 1);
});

t.test('cadence: AIMD on round-trip time; back-off with full jitter stays within bounds', async (t) => {
  const cadence = new CadenceController(unlimited, 0);
  t.equal(cadence.windowBatches, windowBatchesInitial, 'starts at the initial window');
  for (let i = 0; i < 100; i++) cadence.onAck(10);
  t.equal(cadence.windowBatches, windowBatchesMax, 'grows to the maximum while RTT is at its floor');
  cadence.onAck(100);
  t.equal(cadence.windowBatches, windowBatchesMax / 2, 'halves when RTT rises well above the floor');
  for (let attempt = 0; attempt < 30; attempt++) {
    for (const random of [0, 0.5, 0.999]) {
      const delay = backoffMs(attempt, random);
      t.ok(delay >= 0 && delay <= backoffMsMax, `attempt ${attempt}: ${delay} ms within [0, ${backoffMsMax}]`);
    }
  }
});

t.test('a fixed cadence holds entries until the flush time, then sends them in one batch', async (t) => {
  const entries = log(20, () => 'self');
  const sender = new LinkSender('peer', 'self', false, unlimited, 0, { intervalMs: 100, offsetFraction: 0.5, jitter: () => 0.5 });
  const opened = sender.step({ kind: 'open', cursor: 0, head: 20 }, 0);
  t.same(
    opened.map((e) => e.kind),
    ['wake'],
    'nothing is read before the staggered first flush (50 ms)',
  );
  t.equal((opened[0] as { atMs: number }).atMs, 50);
  const first = drive(sender, entries, sender.step({ kind: 'tick' }, 50), 50, true);
  t.equal(first.sends.length, 1, 'one batch at the flush');
  t.equal(first.sends[0]!.entries.length, 20, 'carrying everything appended until then');
  const more = log(30, () => 'self');
  const early = drive(sender, more, sender.step({ kind: 'appended', head: 30 }, 60), 60, true);
  t.equal(early.sends.length, 0, 'a write between flushes waits');
  const second = drive(sender, more, sender.step({ kind: 'tick' }, 150), 150, true);
  t.equal(second.sends[0]?.entries.length, 10, 'and goes at the next flush (100 ms later)');
});

t.test('entries that are all skipped advance the cursor without a frame, after what is in flight', async (t) => {
  const mine = log(3, () => 'self');
  const theirs = log(6, (i) => (i <= 3 ? 'self' : 'peer'));
  const sender = new LinkSender('peer', 'self', false, unlimited, 0);
  const sent = drive(sender, mine, sender.step({ kind: 'open', cursor: 0, head: 3 }, 0), 0, false);
  t.equal(sent.sends.length, 1, 'one batch of own entries in flight');
  sender.step({ kind: 'appended', head: 6 }, 1);
  const skipped = drive(sender, theirs, sender.step({ kind: 'tick' }, 10), 10, false);
  t.same(skipped.sends, [], "the peer's own entries need no frame");
  t.same(skipped.cursors, [], 'nor a cursor move before the batch in flight is acknowledged');
  const acked = sender.step({ kind: 'ack', id: sent.sends[0]!.id, last: 3 }, 12);
  t.same(
    acked.filter((e) => e.kind === 'persist-cursor'),
    [{ kind: 'persist-cursor', cursor: 6 }],
    'the ack moves the cursor past the skipped entries too',
  );
});

t.test('adaptive batching: an idle link sends at once; a busy one lets a few entries gather for a moment', async (t) => {
  const entries = log(10, () => 'self');
  const sender = new LinkSender('peer', 'self', false, unlimited, 0);
  const first = drive(sender, entries.slice(0, 1), sender.step({ kind: 'open', cursor: 0, head: 1 }, 0), 0, false);
  t.equal(first.sends.length, 1, 'idle: the first write goes at once');
  const held = sender.step({ kind: 'appended', head: 2 }, 1);
  t.same(
    held.map((e) => e.kind),
    ['wake'],
    'busy: a single new entry waits instead of being read',
  );
  sender.step({ kind: 'appended', head: 5 }, 3);
  const flushed = drive(sender, entries.slice(0, 5), sender.step({ kind: 'tick' }, 6), 6, false);
  t.equal(flushed.sends.length, 1, 'after the coalescing delay one batch goes');
  t.equal(flushed.sends[0]!.entries.length, 4, 'carrying every entry appended meanwhile');
});

// Goal: lanes share their link's rate limit and the higher-priority lane is served first under it; each lane
// carries only its own datasets.
// Method: two senders on one RateGate (1,000 bytes/s), lane "hot" (priority 0) and "cold" (priority 2); the
// log interleaves their datasets; at every tick the cold lane is stepped first, so order alone cannot explain
// the result.
t.test('lanes: a shared rate limit serves the higher-priority lane first; each lane carries its datasets', async (t) => {
  const entries: LogEntry[] = Array.from({ length: 40 }, (_, i) => ({
    seq: i + 1,
    dataset: i % 2 === 0 ? 'hot' : 'cold',
    key: `k${i}`,
    origin: 'self',
    originSeq: i + 1,
    hlc: { ms: 1, c: 0 },
    delta: new Uint8Array(100),
  }));
  const gate = new RateGate({ bytesPerSecondMax: 1000, entriesPerSecondMax: null }, 0);
  const hotLane = { id: 'hot', datasets: new Set(['hot']), excluded: new Set<string>(), priority: 0 };
  const coldLane = { id: 'cold', datasets: new Set(['cold']), excluded: new Set<string>(), priority: 2 };
  const hot = new LinkSender('peer', 'self', false, gate, 0, null, hotLane);
  const cold = new LinkSender('peer', 'self', false, gate, 0, null, coldLane);
  const sent: Array<{ lane: string; atMs: number; datasets: string[] }> = [];
  const pump = (sender: LinkSender, effects: SenderEffect[], nowMs: number) => {
    const result = drive(sender, entries, effects, nowMs, true);
    for (const send of result.sends) sent.push({ lane: sender.lane.id, atMs: nowMs, datasets: send.entries.map((e) => e.dataset) });
  };
  pump(cold, cold.step({ kind: 'open', cursor: 0, head: 40 }, 0), 0);
  pump(hot, hot.step({ kind: 'open', cursor: 0, head: 40 }, 0), 0);
  for (let nowMs = 100; nowMs <= 6_000; nowMs += 100) {
    pump(cold, cold.step({ kind: 'tick' }, nowMs), nowMs);
    pump(hot, hot.step({ kind: 'tick' }, nowMs), nowMs);
  }
  t.ok(
    sent.every((s) => s.datasets.every((d) => d === s.lane)),
    'each lane carries only its own datasets',
  );
  const hotDoneMs = Math.max(...sent.filter((s) => s.lane === 'hot').map((s) => s.atMs));
  const coldAfterFirst = sent.filter((s) => s.lane === 'cold' && s.atMs > 0);
  t.equal(sent.filter((s) => s.lane === 'hot').flatMap((s) => s.datasets).length, 20, 'every hot entry is sent');
  t.ok(
    coldAfterFirst.every((s) => s.atMs >= hotDoneMs),
    `under the limit, the cold lane waits until the hot lane is done (hot done at ${hotDoneMs} ms)`,
  );
  t.equal(sent.filter((s) => s.lane === 'cold').flatMap((s) => s.datasets).length, 20, 'and then sends everything too');
});

// Goal: a lane with its own rate limit (a dataset's `rate` in the policy) is held to it, while another lane of
// the same link, without one, is not slowed down by it.
// Method: two lanes on one unlimited link gate; lane "rated" has 500 bytes/s of its own. Over 4 simulated
// seconds the rated lane sends at most its burst plus 4 × 500 bytes; the free lane sends everything at once.
t.test("lanes: a lane's own rate limit binds that lane only", async (t) => {
  const entries: LogEntry[] = Array.from({ length: 40 }, (_, i) => ({
    seq: i + 1,
    dataset: i % 2 === 0 ? 'rated' : 'free',
    key: `k${i}`,
    origin: 'self',
    originSeq: i + 1,
    hlc: { ms: 1, c: 0 },
    delta: new Uint8Array(100),
  }));
  const gate = new RateGate(unlimited, 0);
  const ratedLane = {
    id: 'rated',
    datasets: new Set(['rated']),
    excluded: new Set<string>(),
    priority: 1,
    limits: { bytesPerSecondMax: 500, entriesPerSecondMax: null },
  };
  const freeLane = { id: 'free', datasets: new Set(['free']), excluded: new Set<string>(), priority: 1 };
  const rated = new LinkSender('peer', 'self', false, gate, 0, null, ratedLane);
  const free = new LinkSender('peer', 'self', false, gate, 0, null, freeLane);
  const bytes = { rated: 0, free: 0 };
  const pump = (sender: LinkSender, effects: SenderEffect[], nowMs: number) => {
    for (const send of drive(sender, entries, effects, nowMs, true).sends) bytes[sender.lane.id as 'rated' | 'free'] += send.bytes;
  };
  pump(rated, rated.step({ kind: 'open', cursor: 0, head: 40 }, 0), 0);
  pump(free, free.step({ kind: 'open', cursor: 0, head: 40 }, 0), 0);
  t.equal(bytes.free, 2000, 'the free lane sends all of its 20 entries at once');
  for (let nowMs = 100; nowMs <= 4_000; nowMs += 100) pump(rated, rated.step({ kind: 'tick' }, nowMs), nowMs);
  t.ok(bytes.rated <= 500 + 4 * 500, `the rated lane stays within 500 bytes/s plus one burst (${bytes.rated} bytes in 4 s)`);
  t.ok(bytes.rated >= 4 * 500 - 100, `and is not starved (${bytes.rated} bytes)`);
});
