// Goal: the handshake holds against anyone who can open a socket. Whatever a client sends before it has
// proven it holds the cluster secret — random or mutated hellos, wrong or replayed proofs, a welcome proof
// reflected as a hello proof, frames of other types, several frames at once, garbage at the WebSocket
// framing layer, oversized messages, nothing at all — the acceptor refuses it with a reason (or the
// WebSocket layer closes it), never sends a welcome, never applies anything, never crashes; the store is
// unchanged and the honest peer's link stays up. The dialer side is checked the same way against a fake
// acceptor that answers with random and mutated challenges and welcomes.
// Method: two in-process nodes (a1 dials b1) over loopback; fast-check draws attack scenarios, each on a new
// connection to b1, run one after another (slowloris ones concurrently). Each scenario waits for the
// connection to end, within a bound. FUZZ_SEED reproduces the scenarios, FUZZ_RUNS scales their number.
import t from 'tap';
import fc from 'fast-check';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { type AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket, WebSocketServer } from 'ws';
import { isTesseraError } from '@tessera/core';
import { Replica } from '@tessera/store';
import {
  type Frame,
  SyncNode,
  closeCodes,
  decodeFrame,
  encodeFrame,
  frameBytesMax,
  handshakesPendingPerSourceMaxDefault,
  helloProof,
  newNonce,
  protocolVersion,
  welcomeProof,
} from '@tessera/sync';
import { eventually, secret, startCluster } from './cluster.js';

const runsScale = Number(process.env.FUZZ_RUNS ?? 1);
// CI runs a fixed seed (a failure there is reproducible as is); FUZZ_SEED=random explores, FUZZ_SEED=<n> replays.
const seed =
  process.env.FUZZ_SEED === undefined
    ? 20_261_127
    : process.env.FUZZ_SEED === 'random'
      ? Date.now() ^ (Math.random() * 2 ** 31)
      : Number(process.env.FUZZ_SEED);
t.comment(`FUZZ_SEED=${seed} (reproduce: FUZZ_SEED=${seed} npx tap packages/sync/test/fuzz-handshake.test.ts)`);
const params = (numRuns: number) => ({ numRuns: Math.max(1, Math.round(numRuns * runsScale)), seed });

/** Bound on one scenario: the handshake timeout of the test cluster (1 s) and a slow machine's slack. */
const scenarioMsMax = 20_000;
/** Refusal codes the acceptor may give. */
const refusalCodes = new Set(['bad-frame', 'protocol-version', 'cluster-mismatch', 'unknown-node', 'bad-proof', 'handshake-timeout']);
/** Close codes a connection may end with: refused, protocol error (ours or the WebSocket layer's), too big, bad UTF-8, abnormal. */
const closeCodesAllowed = new Set([closeCodes.refused, closeCodes.protocol, 1002, 1006, 1007, 1009]);

// ---------------------------------------------------------------- the attacker's toolbox

type HelloField = 'v' | 'cluster' | 'node' | 'region' | 'nonce' | 'proof';

/** How a hello is forged: each field from a pool of wrong (or right) values, and optional byte damage. */
interface HelloRecipe {
  readonly v: number;
  readonly cluster: string;
  readonly node: string;
  readonly region: string;
  readonly nonce: 'fresh' | 'reflected' | 'zeros' | 'short';
  readonly proof: 'wrong-secret' | 'replayed' | 'reflected-welcome' | 'random' | 'empty' | 'short' | 'swapped-nonces' | 'other-identity';
  readonly drop: HelloField | null;
  readonly damage: ReadonlyArray<{ at: number; xor: number }>;
}

/** Mostly the right value (so that the proof itself is what gets checked), sometimes a wrong one. */
function mostly<T>(right: T, ...wrong: T[]): fc.Arbitrary<T> {
  return fc.oneof({ weight: 4, arbitrary: fc.constant(right) }, { weight: 1, arbitrary: fc.constantFrom(...wrong) });
}

const helloRecipe: fc.Arbitrary<HelloRecipe> = fc.record({
  v: mostly(protocolVersion, 0, protocolVersion + 1, 2 ** 32),
  cluster: mostly('test', 'other', '', 'x'.repeat(64)),
  node: mostly('a1', 'b1', 'c9', 'a1.'),
  region: mostly('eu-west', 'us-east', 'ap-south'),
  nonce: fc.constantFrom('fresh', 'reflected', 'zeros', 'short'),
  proof: fc.constantFrom('wrong-secret', 'replayed', 'reflected-welcome', 'random', 'empty', 'short', 'swapped-nonces', 'other-identity'),
  drop: mostly<HelloField | null>(null, 'v', 'cluster', 'node', 'region', 'nonce', 'proof'),
  damage: mostly<ReadonlyArray<{ at: number; xor: number }>>(
    [],
    [{ at: 7, xor: 1 }],
    [{ at: 40, xor: 0x80 }],
    [
      { at: 90, xor: 0xff },
      { at: 3, xor: 2 },
    ],
  ),
});

/** A hello captured from an honest session earlier: its proof, valid for that session only. */
let captured: { acceptorNonce: Uint8Array; hello: Frame & { t: 'hello' } } | null = null;

function forgeHello(recipe: HelloRecipe, acceptorNonce: Uint8Array): Uint8Array {
  const nonce =
    recipe.nonce === 'fresh' ? newNonce() : recipe.nonce === 'reflected' ? acceptorNonce : recipe.nonce === 'zeros' ? new Uint8Array(32) : new Uint8Array(31);
  const wrongSecret = Buffer.from('not-the-cluster-secret');
  const nonce32 = nonce.length === 32 ? nonce : newNonce();
  const proofs: Record<HelloRecipe['proof'], () => Uint8Array> = {
    'wrong-secret': () => helloProof(wrongSecret, recipe.cluster, recipe.node, recipe.region, acceptorNonce, nonce32),
    // Right secret, right identity, but another session's nonces: a replay.
    replayed: () => captured?.hello.proof ?? helloProof(secret, 'test', 'a1', 'eu-west', newNonce(), nonce32),
    // A welcome proof (which the acceptor itself sends) presented as a hello proof: the labels must differ.
    'reflected-welcome': () => welcomeProof(secret, recipe.cluster, recipe.node, recipe.region, acceptorNonce, nonce32),
    random: () => randomBytes(32),
    empty: () => new Uint8Array(0),
    short: () => helloProof(secret, recipe.cluster, recipe.node, recipe.region, acceptorNonce, nonce32).subarray(0, 31),
    'swapped-nonces': () => helloProof(secret, recipe.cluster, recipe.node, recipe.region, nonce32, acceptorNonce),
    // A right proof for another identity than the one claimed.
    'other-identity': () => helloProof(secret, 'test', recipe.node === 'a1' ? 'c9' : 'a1', recipe.region, acceptorNonce, nonce32),
  };
  const hello: Record<string, unknown> = {
    t: 'hello',
    v: recipe.v,
    cluster: recipe.cluster,
    node: recipe.node,
    region: recipe.region,
    policy: { version: 0, hash: '' },
    nonce,
    proof: proofs[recipe.proof](),
  };
  // Some recipes use the real secret (a replay, a welcome proof, swapped nonces); with a reflected nonce one
  // of them can come out as the right proof, which an attacker without the secret cannot make: spoil it.
  const right = nonce.length === 32 ? helloProof(secret, recipe.cluster, recipe.node, recipe.region, acceptorNonce, nonce) : null;
  if (right !== null && Buffer.from(hello.proof as Uint8Array).equals(right)) hello.proof = Buffer.from(right).map((byte, i) => (i === 0 ? byte ^ 1 : byte));
  if (recipe.drop !== null) delete hello[recipe.drop];
  const bytes = Buffer.from(encodeFrame(hello as unknown as Frame));
  for (const { at, xor } of recipe.damage) bytes[at % bytes.length]! ^= xor;
  return bytes;
}

/** Frames that are valid on an open link but not before the handshake; the batch carries a document. */
function outOfOrderFrames(): Uint8Array[] {
  const entry = {
    seq: 1,
    dataset: 'users',
    key: 'smuggled',
    origin: 'a1',
    originSeq: 1,
    hlc: { ms: Date.now(), c: 0 },
    delta: new Uint8Array([0x97, 1, 0xa3, 0x6d, 0x61, 0x70, 0x90, 0x90, 0x90, 0x90, 0x90]),
  };
  return [
    encodeFrame({ t: 'batch', id: 1, last: 1, entries: [entry] }),
    encodeFrame({ t: 'state', id: 1, last: 1, entries: [entry] }),
    encodeFrame({ t: 'ack', id: 1, last: 1_000_000 }),
    encodeFrame({ t: 'ping', ms: 1, peer: { have: { a1: 1_000_000 }, down: ['b1'] } }),
    encodeFrame({ t: 'policy', version: 99, text: 'version: 99\nregions: {}\ndatasets: {}\n' }),
    encodeFrame({ t: 'welcome', node: 'a1', region: 'eu-west', policy: { version: 0, hash: '' }, proof: randomBytes(32) }),
    encodeFrame({ t: 'challenge', v: protocolVersion, nonce: newNonce() }),
    encodeFrame({ t: 'refuse', code: 'x', reason: 'y' }),
  ];
}

/** An attack: what the client sends after the challenge (`first` may be several messages sent at once). */
type Scenario =
  | { kind: 'hello'; recipe: HelloRecipe; thenFrame: number | null }
  | { kind: 'out-of-order'; frame: number; thenHello: boolean }
  | { kind: 'garbage'; bytes: Uint8Array; asText: boolean }
  | { kind: 'raw-framing'; bytes: Uint8Array }
  | { kind: 'before-challenge'; recipe: HelloRecipe };

const scenario: fc.Arbitrary<Scenario> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('hello' as const), recipe: helloRecipe, thenFrame: fc.option(fc.nat({ max: 7 }), { nil: null }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('out-of-order' as const), frame: fc.nat({ max: 7 }), thenHello: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('garbage' as const), bytes: fc.uint8Array({ maxLength: 600 }), asText: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('raw-framing' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 200 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('before-challenge' as const), recipe: helloRecipe }) },
);

/** What one connection saw. */
interface Outcome {
  readonly frames: string[];
  readonly refusal: { code: string; reason: string } | null;
  readonly closeCode: number | null;
  readonly undecodable: number;
}

/**
 * Runs one scenario on a new WebSocket to `port`; resolves when the connection is closed. Every message the
 * server sends is decoded; a welcome would be an authentication bypass.
 */
function attack(port: number, plan: Scenario): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/replicate`, { perMessageDeflate: false });
    const frames: string[] = [];
    let refusal: Outcome['refusal'] = null;
    let undecodable = 0;
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`scenario ${JSON.stringify(plan)} did not end within ${scenarioMsMax} ms (frames: ${frames.join(', ')})`));
    }, scenarioMsMax);
    ws.on('error', () => undefined);
    ws.on('open', () => {
      if (plan.kind === 'before-challenge') ws.send(forgeHello(plan.recipe, newNonce()));
    });
    ws.on('message', (data: Buffer) => {
      let frame: Frame;
      try {
        frame = decodeFrame(data);
      } catch {
        undecodable++;
        return;
      }
      frames.push(frame.t);
      if (frame.t === 'refuse') refusal = { code: frame.code, reason: frame.reason };
      if (frame.t !== 'challenge') return;
      switch (plan.kind) {
        case 'hello':
          ws.send(forgeHello(plan.recipe, frame.nonce));
          if (plan.thenFrame !== null) ws.send(outOfOrderFrames()[plan.thenFrame]!);
          return;
        case 'out-of-order':
          ws.send(outOfOrderFrames()[plan.frame]!);
          if (plan.thenHello)
            ws.send(
              forgeHello({ v: 1, cluster: 'test', node: 'a1', region: 'eu-west', nonce: 'fresh', proof: 'replayed', drop: null, damage: [] }, frame.nonce),
            );
          return;
        case 'garbage':
          ws.send(plan.asText ? Buffer.from(plan.bytes).toString('latin1') : plan.bytes);
          return;
        case 'raw-framing': {
          // Bytes straight onto the socket, under the WebSocket framing: unmasked, bad opcodes, lies in lengths.
          const socket = (ws as unknown as { _socket: net.Socket })._socket;
          // A server left waiting for the rest of a frame is ended by its handshake timer.
          socket.write(plan.bytes);
          return;
        }
        case 'before-challenge':
          return;
      }
    });
    ws.on('close', (code) => {
      clearTimeout(timer);
      resolve({ frames, refusal, closeCode: code, undecodable });
    });
  });
}

/** Fails `t` with the scenario unless the outcome is a clean refusal. */
function judge(outcome: Outcome, plan: Scenario): string | null {
  if (outcome.frames.includes('welcome')) return `AUTHENTICATION BYPASS: welcome sent for ${JSON.stringify(plan)}`;
  if (outcome.frames.some((name) => name !== 'challenge' && name !== 'refuse')) return `unexpected frames ${outcome.frames.join(', ')}`;
  if (outcome.undecodable > 0) return `${outcome.undecodable} undecodable messages from the node`;
  if (outcome.closeCode === null || !closeCodesAllowed.has(outcome.closeCode)) return `closed with ${outcome.closeCode}`;
  if (outcome.refusal !== null && (!refusalCodes.has(outcome.refusal.code) || outcome.refusal.reason.length === 0)) {
    return `refusal without a known code and a reason: ${JSON.stringify(outcome.refusal)}`;
  }
  if (outcome.closeCode === closeCodes.refused && outcome.refusal === null) return 'closed as refused without saying why';
  return null;
}

// ---------------------------------------------------------------- the acceptor under attack

t.test('acceptor: every attack is refused; no welcome, no write, no crash; the honest link stays up', async (t) => {
  const events: Array<Record<string, unknown>> = [];
  const [a1, b1] = await startCluster(
    t,
    [
      { id: 'a1', region: 'eu-west' },
      { id: 'b1', region: 'us-east' },
    ],
    {
      // Pings every second: the honest link is declared dead after 4 s of silence, not 0.8 s, so a loaded
      // machine's pauses are not mistaken for an attack's effect.
      pingIntervalMs: 1_000,
      log: (event) => events.push({ ...event, atMs: Date.now() }),
    },
  );
  await a1!.replica.put('users', 'before', { v: 1 });
  await b1!.replica.put('users', 'here', { v: 2 });
  t.ok(
    await eventually(async () => (await b1!.replica.get('users', 'before')) !== undefined && (await a1!.replica.get('users', 'here')) !== undefined),
    'the honest link replicates',
  );
  const linkOf = (node: typeof a1) => node!.sync.status().links[0]!;
  const reconnectsBefore = linkOf(a1).reconnects;
  const seqBefore = b1!.replica.lastSeq;
  const docsBefore = JSON.stringify([await b1!.replica.get('users', 'before'), await b1!.replica.get('users', 'here')]);

  // An honest hello on a connection of our own, for a session that then ends: its proof is what a replay uses.
  {
    const ws = new WebSocket(`ws://127.0.0.1:${b1!.port}/v1/replicate`);
    ws.on('error', () => undefined);
    const challenge = await new Promise<Uint8Array>((resolve) =>
      ws.once('message', (data: Buffer) => resolve((decodeFrame(data) as { nonce: Uint8Array }).nonce)),
    );
    const nonce = newNonce();
    captured = {
      acceptorNonce: challenge,
      hello: {
        t: 'hello',
        v: protocolVersion,
        cluster: 'test',
        node: 'a1',
        region: 'eu-west',
        policy: { version: 0, hash: '' },
        nonce,
        proof: helloProof(secret, 'test', 'a1', 'eu-west', challenge, nonce),
      },
    };
    ws.terminate(); // never sent: capturing it must not disturb the honest link
  }

  const kinds = new Map<string, number>();
  const refusals = new Map<string, number>();
  await fc.assert(
    fc.asyncProperty(scenario, async (plan) => {
      kinds.set(plan.kind, (kinds.get(plan.kind) ?? 0) + 1);
      const outcome = await attack(b1!.port, plan);
      if (outcome.refusal !== null) refusals.set(outcome.refusal.code, (refusals.get(outcome.refusal.code) ?? 0) + 1);
      const problem = judge(outcome, plan);
      if (problem !== null) throw new Error(problem);
      if (b1!.replica.lastSeq !== seqBefore) throw new Error(`the store changed (lastSeq ${seqBefore} → ${b1!.replica.lastSeq}) after ${JSON.stringify(plan)}`);
    }),
    params(250),
  );
  t.comment(`scenarios: ${JSON.stringify(Object.fromEntries(kinds))}; refusals: ${JSON.stringify(Object.fromEntries(refusals))}`);
  t.ok(refusals.get('bad-proof')! > 0 && refusals.get('bad-frame')! > 0, 'wrong proofs and wrong frames were among the refusals');

  // Oversized: one message past the frame bound is closed by the WebSocket layer (1009) before any decoding.
  const big = await attack(b1!.port, { kind: 'garbage', bytes: new Uint8Array(frameBytesMax + 1), asText: false });
  t.equal(big.closeCode, 1009, 'a message over the frame bound is closed as too big');

  // Slowloris: connections that take the challenge and then say nothing, or send half a WebSocket frame, or
  // never finish the HTTP upgrade, all at once. At most `handshakesPendingPerSourceMaxDefault` from one address
  // get a WebSocket (the rest are refused at the upgrade), and the handshake timer refuses those.
  const silent = Array.from({ length: 10 }, () => attackSilently(b1!.port, 'silent'));
  const half = Array.from({ length: 10 }, () => attackSilently(b1!.port, 'half-frame'));
  const outcomes = await Promise.all([...silent, ...half]);
  t.same(
    outcomes.filter((o) => o !== 'handshake-timeout' && o !== 'ERR_CONNECTIONS_EXCEEDED'),
    [],
    'every silent or half-sending client was refused, at the upgrade or for its timeout',
  );
  t.equal(
    outcomes.filter((o) => o === 'handshake-timeout').length,
    handshakesPendingPerSourceMaxDefault,
    `as many got a WebSocket as one address may have pending: ${JSON.stringify(outcomes)}`,
  );

  t.equal(b1!.replica.lastSeq, seqBefore, "the store's log is unchanged");
  t.equal(JSON.stringify([await b1!.replica.get('users', 'before'), await b1!.replica.get('users', 'here')]), docsBefore, 'its documents are unchanged');
  t.equal(await b1!.replica.get('users', 'smuggled'), undefined, 'nothing sent before the handshake was applied');
  t.equal(linkOf(a1).state, 'open', 'the honest link is open');
  t.equal(linkOf(a1).reconnects, reconnectsBefore, `and was never dropped ${JSON.stringify(events.filter((e) => String(e.event).startsWith('link-')))}`);
  await a1!.replica.put('users', 'after', { v: 3 });
  t.ok(await eventually(async () => (await b1!.replica.get('users', 'after')) !== undefined), 'and still replicates');
  const refused = [...refusals.values()].reduce((sum, n) => sum + n, 0) + outcomes.length;
  t.ok(events.filter((e) => e.event === 'peer-refused').length >= refused, `each of the ${refused} refusals was logged`);
});

/**
 * A client that opens a connection and stalls. `silent`: takes the challenge, sends nothing. `half-frame`:
 * takes the challenge, sends the first bytes of a masked frame that announces 100 bytes. Resolves with the
 * refusal code it received (or how the connection ended otherwise).
 */
function attackSilently(port: number, how: 'silent' | 'half-frame'): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let buffer = Buffer.alloc(0);
    let upgraded = false;
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('no answer in time');
    }, scenarioMsMax);
    socket.on('error', () => undefined);
    socket.on('connect', () =>
      socket.write(
        [
          'GET /v1/replicate HTTP/1.1',
          `Host: 127.0.0.1:${port}`,
          'Upgrade: websocket',
          'Connection: Upgrade',
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
          'Sec-WebSocket-Version: 13',
          '',
          '',
        ].join('\r\n'),
      ),
    );
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (!upgraded) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (buffer.subarray(0, 12).toString() === 'HTTP/1.1 503') {
          clearTimeout(timer);
          socket.destroy();
          resolve('ERR_CONNECTIONS_EXCEEDED');
          return;
        }
        upgraded = true;
        buffer = buffer.subarray(end + 4);
        if (how === 'half-frame') socket.write(Buffer.from([0x82, 0x80 | 100, 1, 2, 3, 4, 9, 9]));
      }
      // Server frames are unmasked: [fin|opcode, length (< 126 here)], payload.
      while (buffer.length >= 2 && buffer.length >= 2 + (buffer[1]! & 0x7f)) {
        const opcode = buffer[0]! & 0x0f;
        const payload = buffer.subarray(2, 2 + (buffer[1]! & 0x7f));
        buffer = buffer.subarray(2 + payload.length);
        if (opcode !== 2) continue;
        const frame = decodeFrame(payload);
        if (frame.t === 'refuse') {
          clearTimeout(timer);
          socket.destroy();
          resolve(frame.code);
        }
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve('closed without a refusal');
    });
  });
}

// ---------------------------------------------------------------- the dialer against a fake acceptor

/** What the fake acceptor answers on one connection. */
interface FakeScript {
  readonly challenge: 'valid' | 'wrong-version' | 'short-nonce' | 'garbage' | 'welcome-first' | 'batch-first' | 'none';
  readonly welcome: 'wrong-proof' | 'wrong-node' | 'wrong-region' | 'garbage' | 'batch' | 'refuse' | 'mutated' | 'none';
  readonly damage: ReadonlyArray<{ at: number; xor: number }>;
}

const fakeScript: fc.Arbitrary<FakeScript> = fc.record({
  challenge: fc.constantFrom('valid', 'valid', 'valid', 'wrong-version', 'short-nonce', 'garbage', 'welcome-first', 'batch-first', 'none'),
  welcome: fc.constantFrom('wrong-proof', 'wrong-node', 'wrong-region', 'garbage', 'batch', 'refuse', 'mutated', 'none'),
  damage: fc.array(fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }), { maxLength: 2 }),
});

t.test("dialer: a fake acceptor's random and mutated challenges and welcomes never open the link or reach the store", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-fuzz-dialer-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const replica = await Replica.open({ path: join(dir, 'a1'), node: 'a1', region: 'eu-west', durability: 'os' });
  t.teardown(() => replica.close());
  await replica.put('users', 'mine', { v: 1 });
  const seqBefore = replica.lastSeq;

  // The fake acceptor plays one script per connection, from a queue the property fills.
  const scripts: Array<{ script: FakeScript; done: () => void }> = [];
  const http = createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ noServer: true });
  http.on('upgrade', (req, socket, head) =>
    wss.handleUpgrade(req, socket, head, (ws) => {
      const next = scripts.shift();
      if (next === undefined) {
        ws.terminate();
        return;
      }
      playFake(ws, next.script);
      ws.on('close', () => next.done());
      ws.on('error', () => undefined);
    }),
  );
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        http.closeAllConnections();
        http.close(() => resolve());
      }),
  );
  const port = (http.address() as AddressInfo).port;
  // random 0: no back-off between attempts, so each script's connection comes at once.
  let opened = false;
  const sync = new SyncNode({
    replica,
    cluster: 'test',
    secret,
    random: () => 0,
    handshakeTimeoutMs: 1_000,
    pingIntervalMs: 200,
    peers: [
      { node: 'a1', region: 'eu-west', url: 'ws://127.0.0.1:1/unused' },
      { node: 'z9', region: 'ap-south', url: `ws://127.0.0.1:${port}/v1/replicate` },
    ],
    log: (event) => {
      if (event.event === 'link-open') opened = true;
    },
  });

  let runs = 0;
  await fc.assert(
    fc.asyncProperty(fakeScript, async (script) => {
      runs++;
      const finished = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`script ${JSON.stringify(script)} did not end within ${scenarioMsMax} ms`)), scenarioMsMax);
        scripts.push({
          script,
          done: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      });
      if (runs === 1) sync.start();
      await finished;
      if (opened) throw new Error(`the link opened with a fake acceptor: ${JSON.stringify(script)}`);
      if (replica.lastSeq !== seqBefore) throw new Error(`the store changed after ${JSON.stringify(script)}`);
    }),
    params(120),
  );
  await sync.close();
  t.notOk(opened, 'the link never opened');
  t.equal(replica.lastSeq, seqBefore, 'the store is unchanged');
  t.same(await replica.get('users', 'smuggled'), undefined, 'nothing the fake sent was applied');
  t.ok(sync.status().links[0]!.reconnects >= runs - 1, `the dialer kept reconnecting (${sync.status().links[0]!.reconnects} reconnects)`);
});

function playFake(ws: WebSocket, script: FakeScript): void {
  const damaged = (bytes: Uint8Array) => {
    const out = Buffer.from(bytes);
    for (const { at, xor } of script.damage) out[at % out.length]! ^= xor;
    return out;
  };
  const batch = encodeFrame({
    t: 'batch',
    id: 1,
    last: 1,
    entries: [{ seq: 1, dataset: 'users', key: 'smuggled', origin: 'z9', originSeq: 1, hlc: { ms: 1, c: 0 }, delta: new Uint8Array([0x90]) }],
  });
  const challenges: Record<FakeScript['challenge'], (() => Uint8Array) | null> = {
    valid: () => encodeFrame({ t: 'challenge', v: protocolVersion, nonce: newNonce() }),
    'wrong-version': () => encodeFrame({ t: 'challenge', v: protocolVersion + 1, nonce: newNonce() }),
    'short-nonce': () => encodeFrame({ t: 'challenge', v: protocolVersion, nonce: new Uint8Array(8) } as unknown as Frame),
    garbage: () => randomBytes(40),
    'welcome-first': () => encodeFrame({ t: 'welcome', node: 'z9', region: 'ap-south', policy: { version: 0, hash: '' }, proof: randomBytes(32) }),
    'batch-first': () => batch,
    none: null,
  };
  const challenge = challenges[script.challenge];
  if (challenge === null) return; // say nothing: the dialer's handshake timer ends it
  ws.send(script.challenge === 'valid' ? challenge() : damaged(challenge()));
  ws.once('message', (data: Buffer) => {
    let hello: Frame;
    try {
      hello = decodeFrame(data);
    } catch (error) {
      if (!isTesseraError(error, 'ERR_FRAME_INVALID')) throw error;
      ws.close();
      return;
    }
    if (hello.t !== 'hello') return;
    const welcome = (node: string, region: string, proof: Uint8Array) => encodeFrame({ t: 'welcome', node, region, policy: { version: 0, hash: '' }, proof });
    // The fake does not hold the secret: its best proofs use another.
    const fakeProof = (node: string, region: string) => welcomeProof(Buffer.from('guess'), 'test', node, region, newNonce(), hello.nonce);
    const answers: Record<FakeScript['welcome'], (() => Uint8Array) | null> = {
      'wrong-proof': () => welcome('z9', 'ap-south', fakeProof('z9', 'ap-south')),
      'wrong-node': () => welcome('y8', 'ap-south', fakeProof('y8', 'ap-south')),
      'wrong-region': () => welcome('z9', 'eu-west', fakeProof('z9', 'eu-west')),
      garbage: () => randomBytes(64),
      batch: () => batch,
      refuse: () => encodeFrame({ t: 'refuse', code: 'bad-proof', reason: 'x'.repeat(512) }),
      mutated: () => damaged(welcome('z9', 'ap-south', fakeProof('z9', 'ap-south'))),
      none: null,
    };
    const answer = answers[script.welcome];
    if (answer !== null) ws.send(answer());
    // A batch right after the welcome, in case the dialer took the welcome.
    ws.send(batch);
  });
}
