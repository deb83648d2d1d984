// Goal (issue 12, between nodes): peer links are mutual TLS and a peer speaks only as its certificate names it.
// A node with a valid certificate cannot claim another node or region; a relay without a certificate from the
// cluster CA can neither read a link nor join one; a second connection replaces a live link only when it is
// authenticated as the same node; a peer whose clock is off by more than the bound is refused.
// Method: in-process nodes (replica, SyncNode with TLS, the daemon's listener) on 127.0.0.1 with a cluster CA
// and node certificates made for the test; raw `ws` clients and TLS servers play the impostors and relays.
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, type Server as NetServer, type Socket, connect as netConnect, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { Replica } from '@tessera/store';
import { type Frame, type PeerConfig, SyncNode, closeCodes, decodeFrame, encodeFrame, helloProof, newNonce, protocolVersion } from '@tessera/sync';
import { type KeyAndCert, createClusterCa, createListener, createNodeCertificate, peerIdentity } from '../src/index.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const cluster = 'test';
const secret = Buffer.from('test-cluster-secret-0123456789abcdef');

/** The cluster CA, a certificate per node, and a rogue CA's certificate for a1 (a relay's own credentials). */
interface Pki {
  readonly ca: KeyAndCert;
  readonly certs: ReadonlyMap<string, KeyAndCert>;
  readonly rogueA1: KeyAndCert;
}

const specs = [
  { id: 'a1', region: 'eu-west' },
  { id: 'b1', region: 'us-east' },
  { id: 'c1', region: 'ap-south' },
] as const;

let pkiMade: Promise<Pki> | null = null;
function pki(): Promise<Pki> {
  pkiMade ??= (async () => {
    const nowMs = Date.now();
    const ca = await createClusterCa(cluster, nowMs);
    const certs = new Map<string, KeyAndCert>();
    for (const spec of specs) certs.set(spec.id, await createNodeCertificate(ca, { cluster, region: spec.region, node: spec.id }, ['127.0.0.1'], nowMs));
    const rogue = await createClusterCa(cluster, nowMs);
    return { ca, certs, rogueA1: await createNodeCertificate(rogue, { cluster, region: 'eu-west', node: 'a1' }, ['127.0.0.1'], nowMs) };
  })();
  return pkiMade;
}

interface TlsNode {
  readonly id: string;
  readonly replica: Replica;
  readonly sync: SyncNode;
  readonly port: number;
  readonly events: Array<Record<string, unknown>>;
}

async function listenFront(front: NetServer): Promise<number> {
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', () => resolve()));
  return (front.address() as AddressInfo).port;
}

/**
 * Starts nodes `ids` (of `specs`) with mutual TLS. `urlOf` may point a peer's URL elsewhere (a relay);
 * `wallClockOf` skews a node's wall clock.
 */
async function startTlsNodes(
  t: Test,
  ids: readonly string[],
  options: {
    urlOf?: (node: string, url: string) => string;
    wallClockOf?: (node: string) => (() => number) | undefined;
    handshakesPendingMax?: number;
  } = {},
): Promise<Map<string, TlsNode>> {
  const { ca, certs } = await pki();
  const dir = await mkdtemp(join(tmpdir(), 'tessera-peer-tls-'));
  const chosen = specs.filter((spec) => ids.includes(spec.id));
  const routes = new Map<string, SyncNode>();
  const listeners = chosen.map((spec) => {
    const cert = certs.get(spec.id)!;
    return createListener({
      handle: (_req, res) => res.writeHead(404).end(),
      upgrade: (req, socket, head) => routes.get(spec.id)!.handleUpgrade(req, socket, head),
      tls: { key: cert.keyPem, cert: cert.certPem, ca: ca.certPem },
      log: () => undefined,
    });
  });
  const ports = await Promise.all(listeners.map((listener) => listenFront(listener.front)));
  const peers: PeerConfig[] = chosen.map((spec, i) => {
    const url = `wss://127.0.0.1:${ports[i]}/v1/replicate`;
    return { node: spec.id, region: spec.region, url: options.urlOf?.(spec.id, url) ?? url };
  });
  const nodes = new Map<string, TlsNode>();
  for (const [i, spec] of chosen.entries()) {
    const cert = certs.get(spec.id)!;
    const events: Array<Record<string, unknown>> = [];
    const replica = await Replica.open({ path: join(dir, spec.id), node: spec.id, region: spec.region, durability: 'os' });
    const wallClock = options.wallClockOf?.(spec.id);
    const sync = new SyncNode({
      replica,
      cluster,
      secret,
      peers,
      pingIntervalMs: 200,
      handshakeTimeoutMs: 1_000,
      log: (event) => events.push(event),
      tls: { key: cert.keyPem, cert: cert.certPem, ca: ca.certPem, identityOf: (peer) => peerIdentity(peer, cluster) },
      ...(wallClock === undefined ? {} : { wallClock }),
      ...(options.handshakesPendingMax === undefined ? {} : { handshakesPendingMax: options.handshakesPendingMax }),
    });
    routes.set(spec.id, sync);
    nodes.set(spec.id, { id: spec.id, replica, sync, port: ports[i]!, events });
  }
  for (const node of nodes.values()) node.sync.start();
  t.teardown(async () => {
    for (const node of nodes.values()) {
      await node.sync.close();
      await node.replica.close();
    }
    for (const listener of listeners) {
      await listener.close();
      listener.destroyAll();
    }
    await rm(dir, { recursive: true, force: true });
  });
  return nodes;
}

async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return check();
}

function linkOf(node: TlsNode, peer: string) {
  return node.sync.status().links.find((link) => link.peer === peer)!;
}

/**
 * Dials `port` as a peer would (wss, with `cert` when given), answers the challenge with a hello claiming
 * `claim` (with the right secret), and resolves with the frames received and the close code, or the HTTP
 * status when the upgrade was refused.
 */
function impostor(
  port: number,
  cert: KeyAndCert | null,
  caPem: string,
  claim: { node: string; region: string },
): Promise<{ frames: Frame[]; code: number | null; status: number | null; ws: WebSocket }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}/v1/replicate`, {
      ca: caPem,
      ...(cert === null ? {} : { key: cert.keyPem, cert: cert.certPem }),
      perMessageDeflate: false,
    });
    const frames: Frame[] = [];
    let status: number | null = null;
    ws.on('unexpected-response', (_req, res) => {
      status = res.statusCode ?? null;
      res.resume();
      ws.terminate();
    });
    ws.on('error', () => undefined);
    ws.on('message', (data: Buffer) => {
      const frame = decodeFrame(data);
      frames.push(frame);
      if (frame.t === 'challenge') {
        const nonce = newNonce();
        ws.send(
          encodeFrame({
            t: 'hello',
            v: protocolVersion,
            cluster,
            node: claim.node,
            region: claim.region,
            policy: { version: 0, hash: '' },
            nonce,
            proof: helloProof(secret, cluster, claim.node, claim.region, frame.nonce, nonce),
            at: Date.now(),
          }),
        );
      }
      if (frame.t === 'welcome') resolve({ frames, code: null, status, ws });
    });
    ws.on('close', (code) => resolve({ frames, code: status === null ? code : null, status, ws }));
  });
}

t.test('links are mutual TLS: nodes replicate, and a relay on the path sees no plaintext', async (t) => {
  // b1's address for a1 is a TCP relay that records every byte it forwards.
  const seen: Buffer[] = [];
  let target = 0;
  const relay = createNetServer((client: Socket) => {
    const upstream = netConnect(target, '127.0.0.1');
    client.on('data', (chunk: Buffer) => seen.push(Buffer.from(chunk)));
    upstream.on('data', (chunk: Buffer) => seen.push(Buffer.from(chunk)));
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  const relayPort = await listenFront(relay);
  t.teardown(() => new Promise<void>((resolve) => relay.close(() => resolve())));
  const nodes = await startTlsNodes(t, ['a1', 'b1'], {
    urlOf: (node, url) => {
      if (node !== 'b1') return url;
      target = Number(new URL(url).port);
      return `wss://127.0.0.1:${relayPort}/v1/replicate`;
    },
  });
  const a1 = nodes.get('a1')!;
  const b1 = nodes.get('b1')!;
  await a1.replica.put('profiles', 'patient-7', { diagnosis: 'plaintext-marker-1234' });
  t.ok(await eventually(async () => (await b1.replica.get('profiles', 'patient-7')) !== undefined), 'the write reaches b1 over the TLS link');
  t.equal(linkOf(a1, 'b1').state, 'open');
  const bytes = Buffer.concat(seen);
  t.ok(bytes.length > 1_000, `the relay forwarded the link (${bytes.length} bytes)`);
  t.notOk(
    bytes.includes('plaintext-marker-1234') || bytes.includes('patient-7') || bytes.includes('/v1/replicate'),
    'no key, value or request line in the clear',
  );
});

t.test('a node with a valid certificate cannot speak as another node or region', async (t) => {
  const { ca, certs } = await pki();
  const nodes = await startTlsNodes(t, ['a1', 'b1']);
  const b1 = nodes.get('b1')!;
  // b1 accepts a1 (the lower id dials). c1 holds a valid certificate for ap-south; a1's own certificate is for eu-west.
  for (const [label, cert, claim] of [
    ['c1 (ap-south) claiming a1 (eu-west)', certs.get('c1')!, { node: 'a1', region: 'eu-west' }],
    ['a1 claiming its own name in another region', certs.get('a1')!, { node: 'a1', region: 'us-east' }],
  ] as const) {
    const result = await impostor(b1.port, cert, ca.certPem, claim);
    t.equal(result.code, closeCodes.refused, `${label}: closed as refused`);
    const refusal = result.frames.find((frame) => frame.t === 'refuse') as (Frame & { t: 'refuse' }) | undefined;
    t.equal(refusal?.code, 'ERR_PEER_IDENTITY', `${label}: refused with ERR_PEER_IDENTITY (${refusal?.reason})`);
    t.same(
      result.frames.map((frame) => frame.t),
      ['challenge', 'refuse'],
      `${label}: nothing but the challenge and the refusal`,
    );
  }
  t.match(
    b1.events.filter((event) => event.event === 'peer-refused').map((event) => event.reason),
    [/certificate is for node c1 in region ap-south/, /certificate is for node a1 in region eu-west/],
  );
});

t.test('a client without a cluster certificate gets no peer WebSocket; plain ws:// is refused', async (t) => {
  const { ca, rogueA1 } = await pki();
  const nodes = await startTlsNodes(t, ['a1', 'b1']);
  const b1 = nodes.get('b1')!;
  const anonymous = await impostor(b1.port, null, ca.certPem, { node: 'a1', region: 'eu-west' });
  t.equal(anonymous.status, 403, 'no client certificate: the upgrade is refused with 403');
  t.same(anonymous.frames, [], 'not even a challenge');
  const rogue = await impostor(b1.port, rogueA1, ca.certPem, { node: 'a1', region: 'eu-west' });
  t.equal(rogue.status, 403, 'a certificate for a1 from another CA: refused with 403');
  t.same(rogue.frames, []);
  const plain = await new Promise<number | null>((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${b1.port}/v1/replicate`);
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? null);
      ws.terminate();
    });
    ws.on('error', () => resolve(null));
    ws.on('open', () => resolve(101));
  });
  t.equal(plain, 400, 'plain ws:// to a TLS node: ERR_TLS_REQUIRED, no upgrade');
  const logged = b1.events.filter((event) => event.event === 'peer-refused' && event.code === 'ERR_PEER_IDENTITY');
  t.equal(logged.length, 2, `both refusals are logged with their code (${logged.map((event) => event.reason).join('; ')})`);
});

t.test('a dialer refuses an acceptor whose certificate names another node, or comes from another CA', async (t) => {
  const { certs, rogueA1 } = await pki();
  // Two relays that terminate TLS in b1's place: one with c1's valid certificate, one with a rogue CA's.
  for (const [label, cert] of [
    ["c1's valid certificate", certs.get('c1')!],
    ["a rogue CA's certificate", rogueA1],
  ] as const) {
    let upgrades = 0;
    const relay = createHttpsServer({ key: cert.keyPem, cert: cert.certPem }, (_req, res) => res.end());
    relay.on('upgrade', (_req, socket: Socket) => {
      upgrades++;
      socket.destroy();
    });
    relay.on('tlsClientError', () => undefined);
    const relayPort = await new Promise<number>((resolve) => relay.listen(0, '127.0.0.1', () => resolve((relay.address() as AddressInfo).port)));
    const nodes = await startTlsNodes(t, ['a1', 'b1'], { urlOf: (node, url) => (node === 'b1' ? `wss://127.0.0.1:${relayPort}/v1/replicate` : url) });
    const a1 = nodes.get('a1')!;
    t.ok(
      await eventually(() => /ERR_PEER_IDENTITY|certificate/i.test(linkOf(a1, 'b1').lastError ?? '')),
      `${label}: a1's link to b1 names the failure (${linkOf(a1, 'b1').lastError})`,
    );
    t.equal(upgrades, 0, `${label}: the relay never received an upgrade request (TLS failed first)`);
    t.not(linkOf(a1, 'b1').state, 'open');
    await new Promise<void>((resolve) => {
      relay.closeAllConnections();
      relay.close(() => resolve());
    });
  }
});

t.test('a second connection replaces a live link only when authenticated as the same node', async (t) => {
  const { ca, certs } = await pki();
  const nodes = await startTlsNodes(t, ['a1', 'b1']);
  const a1 = nodes.get('a1')!;
  const b1 = nodes.get('b1')!;
  t.ok(await eventually(() => linkOf(b1, 'a1').state === 'open'), 'the link a1 → b1 is open');
  const closes: string[] = [];
  const before = a1.events.length;
  // Another node's valid certificate claiming a1 (with the cluster secret): refused, and the live link stays.
  const other = await impostor(b1.port, certs.get('c1')!, ca.certPem, { node: 'a1', region: 'eu-west' });
  t.equal(other.code, closeCodes.refused, 'c1 speaking as a1: refused');
  await a1.replica.put('profiles', 'after-impostor', { n: 1 });
  t.ok(await eventually(async () => (await b1.replica.get('profiles', 'after-impostor')) !== undefined), 'the live link still carries writes');
  for (const event of a1.events.slice(before)) if (event.event === 'link-closed' || event.event === 'link-down') closes.push(JSON.stringify(event));
  t.same(closes, [], 'a1 saw no close of its link');
  // a1's own certificate: the new connection is the link now, and the old one is closed as replaced.
  const same = await impostor(b1.port, certs.get('a1')!, ca.certPem, { node: 'a1', region: 'eu-west' });
  t.ok(
    same.frames.some((frame) => frame.t === 'welcome'),
    "a connection with a1's own certificate is welcomed",
  );
  t.ok(
    await eventually(() =>
      a1.events.slice(before).some((event) => String(event.reason ?? event.error ?? '').includes('replaced') || event.code === closeCodes.replaced),
    ),
    `a1's old connection was closed as replaced (${JSON.stringify(a1.events.slice(before).slice(-3))})`,
  );
  same.ws.terminate();
});

t.test('a peer whose clock is off by more than the bound is refused at the handshake', async (t) => {
  const nodes = await startTlsNodes(t, ['a1', 'b1'], { wallClockOf: (node) => (node === 'a1' ? () => Date.now() + 2_000 : undefined) });
  const a1 = nodes.get('a1')!;
  const b1 = nodes.get('b1')!;
  t.ok(await eventually(() => /ERR_PEER_CLOCK_OFFSET/.test(linkOf(a1, 'b1').lastError ?? '')), `a1 hears why (${linkOf(a1, 'b1').lastError})`);
  t.match(linkOf(a1, 'b1').lastError, /clock is at least [12][0-9]{3} ms ahead of node b1's, over the limit of 500 ms/);
  t.ok(
    b1.events.some((event) => event.event === 'peer-refused' && event.code === 'ERR_PEER_CLOCK_OFFSET'),
    'b1 logs the refusal',
  );
  t.not(linkOf(a1, 'b1').state, 'open');

  const near = await startTlsNodes(t, ['a1', 'b1'], { wallClockOf: (node) => (node === 'a1' ? () => Date.now() + 200 : undefined) });
  t.ok(await eventually(() => linkOf(near.get('a1')!, 'b1').state === 'open'), 'an offset of 200 ms is within the bound: the link opens');
});

t.test('connections past their upgrade but not their hello are capped in total, whatever their source', async (t) => {
  const { ca, certs } = await pki();
  const nodes = await startTlsNodes(t, ['a1', 'b1'], { handshakesPendingMax: 3 });
  const b1 = nodes.get('b1')!;
  t.ok(await eventually(() => linkOf(b1, 'a1').state === 'open'), 'the honest link is open first');
  // Five connections with a valid certificate, from five source addresses, that take the challenge and say nothing.
  const outcomes = await Promise.all(
    Array.from(
      { length: 5 },
      (_, i) =>
        new Promise<string>((resolve) => {
          const ws = new WebSocket(`wss://127.0.0.1:${b1.port}/v1/replicate`, {
            ca: ca.certPem,
            key: certs.get('c1')!.keyPem,
            cert: certs.get('c1')!.certPem,
            localAddress: `127.0.0.${10 + i}`,
          });
          ws.on('error', () => undefined);
          ws.on('unexpected-response', (_req, res) => {
            resolve(String(res.statusCode));
            res.resume();
            ws.terminate();
          });
          ws.on('message', () => resolve('challenged'));
          t.teardown(() => ws.terminate());
        }),
    ),
  );
  t.same(outcomes.sort(), ['503', '503', 'challenged', 'challenged', 'challenged'], 'three wait for their hello, the others are refused at the upgrade');
  t.ok(
    b1.events.some((event) => event.code === 'ERR_CONNECTIONS_EXCEEDED' && event.handshakesPendingMax === 3),
    'the refusals are logged with the limit',
  );
  t.equal(linkOf(b1, 'a1').state, 'open', 'the honest link is untouched');
});
