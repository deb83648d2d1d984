// Goal: an acknowledged write survives `kill -9`, and sequence numbers never go backwards across crashes.
// Method: a child process writes (puts and counter increments, several writers in flight) and reports each
// acknowledged write; it is SIGKILLed at a random moment; the parent reopens the store and checks that every
// acknowledged write is there. Repeated over many iterations on one data directory, alternating durability
// modes, on a plain and on a sealed data directory (storage/sealed.ts: its key slots are written outside LevelDB's
// batch). Seeded: CRASH_SEED reproduces a run; CRASH_ITERATIONS runs longer.
import t from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Replica } from '@tessera/store';
import { tempDir } from './helpers.js';

const iterations = Number(process.env.CRASH_ITERATIONS ?? 12);
const seed = Number(process.env.CRASH_SEED ?? Date.now() % 1_000_000);
const fixture = fileURLToPath(new URL('./fixtures/crash-writer.ts', import.meta.url));

/** A small seeded PRNG (mulberry32): the kill moments are reproducible from the seed. */
function prng(state: number): () => number {
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let x = Math.imul(state ^ (state >>> 15), 1 | state);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

interface Acks {
  puts: Map<number, number>;
  counterAcks: number;
  seqMax: number;
  seqAtOpen: number;
}

function runUntilKilled(path: string, durability: string, first: number, killAfterMs: number, masterKey: string | null): Promise<Acks> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, path, durability, String(first), '8'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...(masterKey === null ? {} : { TESSERA_TEST_MASTER_KEY: masterKey }) },
    });
    const acks: Acks = { puts: new Map(), counterAcks: 0, seqMax: 0, seqAtOpen: -1 };
    let buffered = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        const [word, kind, index, seq] = line.split(' ');
        if (word === 'open') {
          acks.seqAtOpen = Number(kind);
          // The kill clock starts when the store is open, so every iteration really writes.
          timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        } else if (word === 'ack') {
          if (kind === 'put') acks.puts.set(Number(index), Number(seq));
          else acks.counterAcks++;
          acks.seqMax = Math.max(acks.seqMax, Number(seq));
        }
      }
    });
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('exit', (_code, signal) => {
      clearTimeout(timer);
      if (signal !== 'SIGKILL') reject(new Error(`writer exited without being killed: ${stderr}`));
      else resolve(acks);
    });
  });
}

for (const masterKey of [null, randomBytes(32).toString('base64')])
  t.test(`acknowledged writes survive SIGKILL (${masterKey === null ? 'plain' : 'sealed'}, seed ${seed}, ${iterations} iterations)`, async (t) => {
    const encryption = masterKey === null ? {} : { encryption: { masterKey } };
    const random = prng(seed);
    const path = join(await tempDir(t), 'crash-1');
    const acked = new Map<number, number>();
    let counterAcked = 0;
    let seqFloor = 0;
    let first = 0;
    for (let i = 0; i < iterations; i++) {
      const durability = i % 2 === 0 ? 'os' : 'fsync';
      const acks = await runUntilKilled(path, durability, first, 50 + Math.floor(random() * 400), masterKey);
      t.ok(acks.seqAtOpen >= seqFloor, `iteration ${i}: sequence number at open ${acks.seqAtOpen} did not go backwards from ${seqFloor} (SEED=${seed})`);
      for (const [index, seq] of acks.puts) acked.set(index, seq);
      counterAcked += acks.counterAcks;
      first += 1_000_000;

      const replica = await Replica.open({ path, node: 'crash-1', region: 'eu-west', durability: 'os', ...encryption });
      const missing: number[] = [];
      for (const [index] of acks.puts) {
        const doc = await replica.get('docs', `k${index}`);
        if ((doc?.value as { index?: number } | undefined)?.index !== index) missing.push(index);
      }
      t.same(missing, [], `iteration ${i} (${durability}): all ${acks.puts.size} acknowledged puts present (SEED=${seed})`);
      const counter = await replica.counter('stats', 'acked').value();
      t.ok(counter >= counterAcked, `iteration ${i}: counter ${counter} ≥ ${counterAcked} acknowledged increments`);
      t.ok(replica.lastSeq >= acks.seqMax, `iteration ${i}: last sequence number ${replica.lastSeq} ≥ highest acknowledged ${acks.seqMax}`);
      seqFloor = replica.lastSeq;
      await replica.close();
    }
    // Every write acknowledged in any iteration is still there at the end.
    const replica = await Replica.open({ path, node: 'crash-1', region: 'eu-west', durability: 'os', ...encryption });
    let present = 0;
    for (const [index] of acked) if ((await replica.get('docs', `k${index}`)) !== undefined) present++;
    t.equal(present, acked.size, `all ${acked.size} acknowledged puts across ${iterations} crashes are present`);
    t.ok(acked.size > iterations, 'the writers made progress before being killed');
    await replica.close();
  });
