/**
 * A simulated node: a real `Replica` (LevelDB in a temp directory) and, per peer, real `LinkSender` state
 * machines, driven over the simulated network and clock. It does what `SyncNode` (packages/sync/src/node.ts)
 * does with WebSockets, with the same public APIs of the store and the sender: the handshake and its policy
 * stamps, cursors read on open and written coalesced, log reads judged by `replica.sendable`, batches applied
 * with `replica.applyDeltas(entries, { from: region })` and acknowledged only once durable, `reject` frames on
 * ERR_POLICY_REJECTED, acks and pings carrying the peer state for forwarding, state catch-up when the log was
 * truncated, policy distribution to peers on older versions, liveness pings, ack timeouts, back-off with
 * jitter, log retention. Every asynchronous step of SyncNode is an event here, so a seed fixes their order.
 *
 * Crashes: the node's LevelDB handle is wrapped so that a crash can strike at the k-th storage write of an
 * operation — writes before it are on disk (a process kill under `durability: 'os'` keeps what LevelDB handed
 * to the OS), the k-th and later never happen — or right after an operation became durable but before its
 * acknowledgement left the process.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type Policy, TesseraError, assert, isTesseraError, parsePolicy } from '@tessera/core';
import { type ChangeEvent, type LogEntry, Replica } from '@tessera/store';
import {
  type Frame, type LaneConfig, type LaneSpec, LinkSender, type PeerState, type PolicyStamp, type SenderEffect, type SenderInput,
  backoffMs, buildLanes, closeCodes, decodeFrame, encodeFrame, helloProof, lanePriorities, nonceBytes, protocolVersion, proofMatches,
  welcomeProof,
} from '@tessera/sync';
import { type SimConn, type SimNetwork } from './network.js';
import { type Random } from './random.js';

/** Timing of the links (SyncNode's defaults, a shorter retention interval and a small log to force catch-ups). */
export interface LinkTiming {
  readonly handshakeTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly silentIntervalsMax: number;
  readonly ackTimeoutMs: number;
  readonly retentionIntervalMs: number;
  readonly logEntriesMax: number;
  readonly deniedAuditIntervalMs: number;
}

/** Entries joined in one apply (SyncNode's applyGroupEntriesMax). */
const applyGroupEntriesMax = 5_000;
/** SyncNode's rejectedSeqsMax. */
const rejectedSeqsMax = 100_000;

/** What a node needs from the simulation. */
export interface NodeHost {
  readonly nowMs: number;
  at(atMs: number, label: string, run: () => void | Promise<void>): void;
  readonly network: SimNetwork;
  readonly cluster: string;
  readonly secret: Uint8Array;
  readonly timing: LinkTiming;
  /** The node's wall clock (skewed, may jump): the replica's HLC reads it. */
  wallMs(node: string): number;
  /** The clock given to the link machinery (SyncNode's `now`). */
  linkMs(node: string): number;
  /** How long one storage operation takes, in simulated ms. */
  diskDelayMs(): number;
  /** The config's policy (what the daemon passes to Replica.open on every start). */
  configPolicy(): Policy;
  readonly observer: NodeObserver;
}

/** What the checks are told. */
export interface NodeObserver {
  /** A document changed at the node (local write, applied delta). */
  changed(node: SimNode, dataset: string, key: string): void;
  /** A batch or state frame is put on the wire to `peer`. */
  sent(node: SimNode, peer: string, entries: readonly LogEntry[]): void;
  /** Before the node installs a policy version (reads only). */
  beforeInstall(replica: Replica, policy: Policy): Promise<void>;
  /** The node installed a policy version (from a peer). */
  policyInstalled(node: SimNode, policy: Policy, from: string): void;
  /** Something the node did that a trace should show. */
  trace(text: string): void;
}

type LinkState = 'idle' | 'connecting' | 'handshaking' | 'open' | 'backoff' | 'closed';

class SimLane {
  cursorWanted = 0;
  cursorWritten = 0;
  cursorWriting = false;
  constructor(readonly sender: LinkSender) {}
  get id(): string {
    return this.sender.lane.id;
  }
}

class SimLink {
  state: LinkState = 'idle';
  conn: SimConn | null = null;
  readonly lanes = new Map<string, SimLane>();
  lastError: string | null = null;
  attempt = 0;
  reconnects = 0;
  peerPolicy: PolicyStamp | null = null;
  readonly rejectedSeqs = new Set<number>();
  deniedSinceAudit = new Map<string, number>();
  lastHeardMs = 0;
  applyQueue: Array<{ conn: SimConn; frame: Extract<Frame, { t: 'batch' | 'state' }> }> = [];
  applying = false;
  /** Bumped on every close: timers of an older generation do nothing. */
  generation = 0;

  constructor(readonly peer: string, readonly region: string, readonly role: 'dial' | 'accept', self: string, nowMs: number, lanes: ReadonlyArray<{ spec: LaneSpec; fixed: { intervalMs: number; offsetFraction: number; jitter: () => number } | null }>) {
    for (const lane of lanes) this.lanes.set(lane.spec.id, new SimLane(new LinkSender(peer, self, true, { bytesPerSecondMax: null, entriesPerSecondMax: null }, nowMs, lane.fixed, lane.spec)));
  }
}

/** The lanes a daemon builds from the policy in force (server's lanesOf, without per-dataset rates). */
export function lanesOfPolicy(policy: Policy | null): LaneConfig[] {
  const groups = new Map<string, LaneConfig & { datasets: string[] }>();
  for (const dataset of [...(policy?.datasets.values() ?? [])].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (dataset.priority === 'normal' && dataset.cadenceMs === null) continue;
    const id = `${dataset.priority}${dataset.cadenceMs === null ? '' : `-${dataset.cadenceMs}ms`}`;
    const lane = groups.get(id) ?? { id, datasets: [], priority: lanePriorities[dataset.priority], ...(dataset.cadenceMs === null ? {} : { fixedCadenceMs: dataset.cadenceMs }) };
    lane.datasets.push(dataset.name);
    groups.set(id, lane);
  }
  return [...groups.values()];
}

/** Raised inside an operation when an armed crash strikes; the operation goes no further. */
class CrashPoint extends Error {}

/** One simulated node. */
export class SimNode {
  replica: Replica | null = null;
  /** 0 before the first start; bumped by every start. */
  incarnation = 0;
  private links = new Map<string, SimLink>();
  /** An armed crash: strike at this storage write of the next operation that writes (0 = the first). */
  private crashArm: { atWrite: number } | null = null;
  private writesInOp = 0;
  private crashStruck: (() => void) | null = null;
  private lastDeniedAuditMs = 0;
  readonly stats = { crashes: 0, midOpCrashes: 0, restarts: 0, applied: 0, rejectsSent: 0, rejectsReceived: 0, catchUps: 0, protocolErrors: 0 };
  private readonly onChange = (change: ChangeEvent) => this.onReplicaChange(change);
  private readonly onAppended = () => this.onReplicaChange(null);

  constructor(
    readonly id: string,
    readonly region: string,
    private readonly peers: ReadonlyArray<{ node: string; region: string }>,
    private readonly dataDir: string,
    private readonly host: NodeHost,
    private readonly random: Random,
  ) {}

  get alive(): boolean {
    return this.replica !== null;
  }

  get path(): string {
    return join(this.dataDir, this.id);
  }

  // ---------------------------------------------------------------- lifecycle

  /** Opens the replica (recovering what is on disk) and starts the links. */
  async start(): Promise<void> {
    assert(this.replica === null, `node ${this.id} starts once`);
    const replica = await Replica.open({
      path: this.path, node: this.id, region: this.region, durability: 'os',
      peers: this.peers.map((p) => ({ node: p.node, region: p.region })),
      wallClock: () => this.host.wallMs(this.id),
      policy: this.host.configPolicy(),
    });
    this.wrapStorage(replica);
    this.replica = replica;
    this.incarnation++;
    if (this.incarnation > 1) this.stats.restarts++;
    const nowMs = this.now();
    const laneSpecs = buildLanes(lanesOfPolicy(replica.policy), undefined);
    this.links = new Map();
    for (const peer of this.peers) {
      const role = this.id < peer.node ? 'dial' : 'accept';
      const lanes = laneSpecs.map(({ spec, fixedCadenceMs }) => ({
        spec,
        fixed: fixedCadenceMs === undefined ? null : { intervalMs: fixedCadenceMs, offsetFraction: this.random.next(), jitter: () => this.random.next() },
      }));
      this.links.set(peer.node, new SimLink(peer.node, peer.region, role, this.id, nowMs, lanes));
    }
    replica.on('change', this.onChange);
    replica.on('appended', this.onAppended);
    this.lastDeniedAuditMs = nowMs;
    for (const link of this.links.values()) if (link.role === 'dial') this.dial(link);
    this.every(this.host.timing.pingIntervalMs, 'ping', () => this.pingAll());
    this.every(this.host.timing.retentionIntervalMs, 'retain', () => this.retain());
  }

  /** Kills the process: sockets vanish, in-flight work is abandoned, LevelDB keeps what was written. */
  async crash(): Promise<void> {
    const replica = this.replica;
    if (replica === null) return;
    this.host.observer.trace(`${this.id}: crash`);
    this.stats.crashes++;
    this.replica = null;
    this.crashArm = null;
    this.crashStruck = null;
    this.host.network.crashed(this.id, this.incarnation);
    for (const link of this.links.values()) {
      link.generation++;
      link.conn = null;
      link.state = 'closed';
    }
    replica.off('change', this.onChange);
    replica.off('appended', this.onAppended);
    // Release LevelDB's lock so that the restarted process can open the directory.
    await (replica as unknown as { db: { close(): Promise<void> } }).db.close();
  }

  /** Closes the node cleanly (end of a run). */
  async stop(): Promise<void> {
    const replica = this.replica;
    if (replica === null) return;
    this.replica = null;
    this.host.network.crashed(this.id, this.incarnation);
    for (const link of this.links.values()) link.generation++;
    await replica.close();
  }

  /** Removes the data directory. */
  async remove(): Promise<void> {
    await rm(this.path, { recursive: true, force: true });
  }

  /** Arms a crash at the `atWrite`-th storage write of the next operation that writes. */
  armCrash(atWrite: number): void {
    if (this.replica !== null) this.crashArm = { atWrite };
  }

  /** Disarms a crash not yet struck. */
  disarm(): void {
    this.crashArm = null;
  }

  get crashArmed(): boolean {
    return this.crashArm !== null;
  }

  /**
   * Runs one operation of this node as an event's work. If an armed crash strikes inside it, the operation is
   * abandoned at that write and the node crashes; if the operation wrote and completed, an armed crash strikes
   * before `effects` (its acknowledgement) runs.
   */
  async operate<T>(work: (replica: Replica) => Promise<T>, effects: (result: T) => void | Promise<void>): Promise<'done' | 'crashed' | 'down'> {
    const replica = this.replica;
    if (replica === null) return 'down';
    this.writesInOp = 0;
    let struck!: () => void;
    const strike = new Promise<'crashed'>((resolve) => (struck = () => resolve('crashed')));
    this.crashStruck = struck;
    const outcome = await Promise.race([work(replica).then((result) => ({ result })), strike]);
    this.crashStruck = null;
    if (outcome === 'crashed') {
      this.stats.midOpCrashes++;
      await this.crash();
      return 'crashed';
    }
    if (this.crashArm !== null && this.writesInOp > 0) {
      this.stats.midOpCrashes++;
      await this.crash();
      return 'crashed';
    }
    if (this.replica !== replica) return 'down';
    await effects(outcome.result);
    return 'done';
  }

  private wrapStorage(replica: Replica): void {
    const db = (replica as unknown as { db: Record<string, (...args: unknown[]) => Promise<unknown>> }).db;
    for (const method of ['batch', 'put', 'del', 'clear'] as const) {
      const original = db[method]!.bind(db);
      db[method] = (...args: unknown[]) => {
        if (this.replica === replica && this.crashArm !== null && this.crashStruck !== null && this.writesInOp >= this.crashArm.atWrite) {
          const struck = this.crashStruck;
          this.crashStruck = null;
          struck();
          // The process is gone: this write never happens, and nothing after it.
          return new Promise(() => undefined);
        }
        this.writesInOp++;
        return original(...args);
      };
    }
  }

  private now(): number {
    return this.host.linkMs(this.id);
  }

  /** A timer of this incarnation, in the link clock's milliseconds. */
  private timer(delayMs: number, label: string, run: () => void | Promise<void>): void {
    const incarnation = this.incarnation;
    this.host.at(this.host.nowMs + Math.max(0, Math.ceil(delayMs)), `${this.id}:${label}`, () => {
      if (this.replica === null || this.incarnation !== incarnation) return undefined;
      return run();
    });
  }

  private every(intervalMs: number, label: string, run: () => void | Promise<void>): void {
    this.timer(intervalMs, label, async () => {
      await run();
      this.every(intervalMs, label, run);
    });
  }

  /** A storage step after a disk delay, as an operation that a crash can strike. */
  private disk<T>(label: string, work: (replica: Replica) => Promise<T>, effects: (result: T) => void | Promise<void>): void {
    this.timer(this.host.diskDelayMs(), label, async () => {
      await this.operate(work, effects);
    });
  }

  // ---------------------------------------------------------------- retention

  private async retain(): Promise<void> {
    await this.operate(async (replica) => {
      const cursors = await replica.cursors();
      const acknowledgedByAll = Math.min(...[...this.links.values()].flatMap((link) =>
        [...link.lanes.keys()].map((lane) => cursors[lane === 'main' ? link.peer : `${link.peer}/${lane}`] ?? 0)));
      // Documents handed over to other regions are purged here once every node there acknowledged them.
      const acknowledgedIn = (region: string): number => {
        const links = [...this.links.values()].filter((link) => link.region === region);
        if (links.length === 0) return 0;
        return Math.min(...links.flatMap((link) => [...link.lanes.keys()].map((lane) => cursors[lane === 'main' ? link.peer : `${link.peer}/${lane}`] ?? 0)));
      };
      await replica.settleHandovers(acknowledgedIn);
      const sizeBound = replica.committedSeq - this.host.timing.logEntriesMax;
      const upto = Math.max(Number.isFinite(acknowledgedByAll) ? acknowledgedByAll : replica.committedSeq, sizeBound);
      if (upto <= replica.logFloor) return replica.logFloor;
      return replica.truncateLog(upto);
    }, () => undefined);
  }

  // ---------------------------------------------------------------- policy

  /** Installs a policy through the API (as `tessera policy apply` does), then offers it to the peers. */
  async installPolicy(policy: Policy): Promise<'done' | 'crashed' | 'down' | 'refused'> {
    let refused = false;
    const outcome = await this.operate(async (replica) => {
      try {
        await replica.installPolicy(policy, 'enforce', 'api');
      } catch (error) {
        if (isTesseraError(error, 'ERR_POLICY_CONFLICT')) refused = true;
        else throw error;
      }
    }, () => {
      if (!refused) this.policyChanged();
    });
    return refused ? 'refused' : outcome;
  }

  private offerPolicy(link: SimLink, conn: SimConn): void {
    const replica = this.replica!;
    const policy = replica.policy;
    if (policy === null || (link.peerPolicy?.version ?? 0) >= policy.version) return;
    this.sendFrame(link, conn, { t: 'policy', version: policy.version, text: policy.text });
    link.peerPolicy = replica.policyStamp();
  }

  private receivePolicy(link: SimLink, version: number, text: string): void {
    const replica = this.replica!;
    if (version <= (replica.policy?.version ?? 0)) return;
    // SyncNode starts this without awaiting it; here it is its own storage step.
    this.disk(`policy-from-${link.peer}`, async (r) => {
      if (version <= (r.policy?.version ?? 0)) return null;
      let policy: Policy;
      try {
        policy = parsePolicy(text, `policy v${version} from ${link.peer}`);
        if (policy.version !== version) throw new TesseraError('ERR_POLICY_INVALID', `the frame says version ${version}, the text ${policy.version}`);
        await this.host.observer.beforeInstall(r, policy);
        await r.installPolicy(policy, 'enforce', `peer:${link.peer}`);
      } catch (error) {
        if (isTesseraError(error)) return null;
        throw error;
      }
      return policy;
    }, (policy) => {
      if (policy === null) return;
      link.peerPolicy = this.replica!.policyStamp();
      this.host.observer.policyInstalled(this, policy, link.peer);
      this.policyChanged();
    });
  }

  private policyChanged(): void {
    for (const link of this.links.values()) {
      link.rejectedSeqs.clear();
      const conn = link.conn;
      if (link.state !== 'open' || conn === null) continue;
      this.offerPolicy(link, conn);
    }
  }

  // ---------------------------------------------------------------- connections

  private dial(link: SimLink): void {
    if (this.replica === null) return;
    link.state = 'connecting';
    let stage: 'challenge' | 'welcome' | 'open' = 'challenge';
    let dialerNonce: Uint8Array | null = null;
    let acceptorNonce: Uint8Array | null = null;
    let handshakeDone = false;
    const conn: SimConn = this.host.network.connect(this.id, this.incarnation, link.peer, {
      onOpen: () => {
        if (link.conn === conn) link.state = 'handshaking';
      },
      onMessage: (bytes) => {
        const frame = this.parse(link, conn, bytes);
        if (frame === null) return;
        if (stage === 'open') {
          this.onFrame(link, conn, frame);
          return;
        }
        if (stage === 'challenge' && frame.t === 'challenge') {
          if (frame.v !== protocolVersion) return this.drop(link, conn, closeCodes.protocol, 'protocol version');
          acceptorNonce = frame.nonce;
          dialerNonce = this.random.bytes(nonceBytes);
          const self = this.replica!;
          this.sendFrame(link, conn, {
            t: 'hello', v: protocolVersion, cluster: this.host.cluster, node: self.node, region: self.region, policy: self.policyStamp(),
            nonce: dialerNonce, proof: helloProof(this.host.secret, this.host.cluster, self.node, self.region, acceptorNonce, dialerNonce),
          }, true);
          stage = 'welcome';
          return;
        }
        if (stage === 'welcome' && frame.t === 'welcome') {
          const expected = welcomeProof(this.host.secret, this.host.cluster, frame.node, frame.region, acceptorNonce!, dialerNonce!);
          if (frame.node !== link.peer || frame.region !== link.region || !proofMatches(expected, frame.proof)) {
            return this.drop(link, conn, closeCodes.refused, 'authentication');
          }
          handshakeDone = true;
          stage = 'open';
          link.peerPolicy = frame.policy;
          this.established(link, conn);
          return;
        }
        if (frame.t === 'refuse') return this.drop(link, conn, closeCodes.refused, `refused: ${frame.code}`);
        this.drop(link, conn, closeCodes.protocol, `unexpected ${frame.t} during the handshake`);
      },
      onClose: (code, reason) => {
        handshakeDone = true;
        this.onClosed(link, conn, code, reason);
      },
    });
    link.conn = conn;
    const generation = link.generation;
    this.timer(this.host.timing.handshakeTimeoutMs, `handshake-timeout-${link.peer}`, () => {
      if (!handshakeDone && link.conn === conn && link.generation === generation) this.drop(link, conn, closeCodes.protocol, 'handshake timed out');
    });
  }

  /** The network delivered a new connection to this node. */
  accept(conn: SimConn): void {
    if (this.replica === null) return;
    const acceptorNonce = this.random.bytes(nonceBytes);
    let link: SimLink | null = null;
    let helloSeen = false;
    const refuse = (code: string, reason: string) => {
      this.host.network.send(conn, this.id, encodeFrame({ t: 'refuse', code, reason }));
      this.host.network.close(conn, this.id, closeCodes.refused, code);
    };
    conn.acceptor.handler = {
      onOpen: () => undefined,
      onMessage: (bytes) => {
        if (link !== null) {
          const frame = this.parse(link, conn, bytes);
          if (frame !== null) this.onFrame(link, conn, frame);
          return;
        }
        if (helloSeen) return;
        helloSeen = true;
        let frame: Frame;
        try {
          frame = decodeFrame(bytes);
        } catch {
          return refuse('bad-frame', 'malformed');
        }
        if (frame.t !== 'hello') return refuse('bad-frame', `expected hello, got ${frame.t}`);
        if (frame.v !== protocolVersion) return refuse('protocol-version', 'version');
        if (frame.cluster !== this.host.cluster) return refuse('cluster-mismatch', 'cluster');
        const candidate = this.links.get(frame.node);
        if (candidate === undefined || candidate.region !== frame.region || candidate.role !== 'accept') return refuse('unknown-node', 'unknown');
        const expected = helloProof(this.host.secret, this.host.cluster, frame.node, frame.region, acceptorNonce, frame.nonce);
        if (!proofMatches(expected, frame.proof)) return refuse('bad-proof', 'authentication failed');
        link = candidate;
        const previous = link.conn;
        if (previous !== null && previous !== conn) {
          this.detach(link);
          const end = previous.acceptor.node === this.id ? previous.acceptor : previous.dialer;
          if (end.state === 'open') this.host.network.close(previous, this.id, closeCodes.replaced, 'replaced by a new connection');
          else this.host.network.terminate(previous, this.id);
        }
        link.conn = conn;
        link.peerPolicy = frame.policy;
        const self = this.replica!;
        this.sendFrame(link, conn, {
          t: 'welcome', node: self.node, region: self.region, policy: self.policyStamp(),
          proof: welcomeProof(this.host.secret, this.host.cluster, self.node, self.region, acceptorNonce, frame.nonce),
        });
        this.established(link, conn);
      },
      onClose: (code, reason) => {
        if (link !== null) this.onClosed(link, conn, code, reason);
      },
    };
    this.host.network.send(conn, this.id, encodeFrame({ t: 'challenge', v: protocolVersion, nonce: acceptorNonce }));
    this.timer(this.host.timing.handshakeTimeoutMs, 'accept-timeout', () => {
      if (link === null && !helloSeen) refuse('handshake-timeout', 'no hello in time');
    });
  }

  private established(link: SimLink, conn: SimConn): void {
    link.state = 'open';
    link.lastHeardMs = this.now();
    link.lastError = null;
    link.attempt = 0;
    this.host.observer.trace(`${this.id}: link to ${link.peer} open (#${conn.id})`);
    this.offerPolicy(link, conn);
    for (const lane of link.lanes.values()) {
      this.disk(`cursor-read-${link.peer}`, (replica) => replica.cursor(link.peer, lane.id).then((cursor) => ({
        cursor, head: replica.lastSeq, floor: replica.logFloor, committed: replica.committedSeq,
      })), (opened) => {
        if (link.conn !== conn || link.state !== 'open') return;
        this.step(link, conn, lane, { kind: 'open', ...opened });
      });
    }
  }

  private detach(link: SimLink): void {
    link.conn = null;
    link.generation++;
    for (const lane of link.lanes.values()) lane.sender.step({ kind: 'closed' }, this.now());
  }

  private onClosed(link: SimLink, conn: SimConn, code: number, reason: string): void {
    if (link.conn !== conn || this.replica === null) return;
    this.detach(link);
    link.lastError = link.lastError ?? `closed (${code}${reason ? `: ${reason}` : ''})`;
    if (link.role === 'dial') {
      link.state = 'backoff';
      link.reconnects++;
      const delayMs = backoffMs(link.attempt++, this.random.next());
      const generation = link.generation;
      this.timer(delayMs, `redial-${link.peer}`, () => {
        if (link.generation === generation && link.conn === null) this.dial(link);
      });
    } else {
      link.state = 'idle';
    }
  }

  private drop(link: SimLink, conn: SimConn, code: number, reason: string): void {
    if (link.conn !== conn) {
      this.host.network.terminate(conn, this.id);
      return;
    }
    link.lastError = reason;
    if (code === closeCodes.protocol) this.stats.protocolErrors++;
    this.host.observer.trace(`${this.id}: drop link to ${link.peer} (#${conn.id}): ${reason}`);
    const end = conn.dialer.node === this.id ? conn.dialer : conn.acceptor;
    if (end.state === 'open') this.host.network.close(conn, this.id, code, reason.slice(0, 120));
    else this.host.network.terminate(conn, this.id);
  }

  // ---------------------------------------------------------------- streaming

  private parse(link: SimLink, conn: SimConn, bytes: Uint8Array): Frame | null {
    try {
      return decodeFrame(bytes);
    } catch (error) {
      this.drop(link, conn, closeCodes.protocol, `malformed frame: ${isTesseraError(error) ? error.code : 'error'}`);
      return null;
    }
  }

  private onFrame(link: SimLink, conn: SimConn, frame: Frame): void {
    if (link.conn !== conn || this.replica === null) return;
    link.lastHeardMs = this.now();
    switch (frame.t) {
      case 'batch':
      case 'state':
        link.applyQueue.push({ conn, frame });
        if (!link.applying) {
          link.applying = true;
          this.timer(this.host.diskDelayMs(), `apply-${link.peer}`, () => this.drainApplies(link));
        }
        return;
      case 'ack': {
        const lane = link.lanes.get(frame.lane ?? 'main');
        if (lane === undefined) return this.drop(link, conn, closeCodes.protocol, 'ack for an unknown lane');
        this.step(link, conn, lane, { kind: 'ack', id: frame.id, last: frame.last });
        if (frame.peer !== undefined) for (const each of link.lanes.values()) this.step(link, conn, each, { kind: 'peer-state', ...frame.peer });
        return;
      }
      case 'ping':
        this.sendFrame(link, conn, { t: 'pong', ms: frame.ms });
        if (frame.peer !== undefined) for (const each of link.lanes.values()) this.step(link, conn, each, { kind: 'peer-state', ...frame.peer });
        return;
      case 'pong':
        return;
      case 'reject': {
        this.stats.rejectsReceived++;
        const replica = this.replica;
        const behind = (link.peerPolicy?.version ?? 0) < (replica.policy?.version ?? 0);
        for (const seq of behind ? [] : frame.seqs) {
          if (link.rejectedSeqs.size >= rejectedSeqsMax) link.rejectedSeqs.delete(link.rejectedSeqs.values().next().value!);
          link.rejectedSeqs.add(seq);
        }
        this.drop(link, conn, closeCodes.policy, `peer's policy refused ${frame.seqs.length} entries of batch ${frame.id}`);
        return;
      }
      case 'policy':
        this.receivePolicy(link, frame.version, frame.text);
        return;
      default:
        this.drop(link, conn, closeCodes.protocol, `unexpected ${frame.t} frame on an open link`);
    }
  }

  /** SyncNode.drainApplies: joins the queued batches in one applyDeltas, acknowledges each once durable. */
  private async drainApplies(link: SimLink): Promise<void> {
    const group: Array<{ conn: SimConn; frame: Extract<Frame, { t: 'batch' | 'state' }> }> = [];
    let entries = 0;
    while (link.applyQueue.length > 0) {
      const next = link.applyQueue[0]!;
      if (group.length > 0 && entries + next.frame.entries.length > applyGroupEntriesMax) break;
      link.applyQueue.shift();
      group.push(next);
      entries += next.frame.entries.length;
    }
    const conn = group[0]?.conn;
    const current = group.filter((item) => item.conn === conn && link.conn === conn);
    const more = () => {
      if (this.replica === null) return;
      if (link.applyQueue.length > 0) this.timer(this.host.diskDelayMs(), `apply-${link.peer}`, () => this.drainApplies(link));
      else link.applying = false;
    };
    if (current.length === 0 || conn === undefined) return more();
    type Outcome = { ok: true; applied: number } | { ok: false; error: unknown };
    const outcome = await this.operate<Outcome>(
      (replica) => replica.applyDeltas(current.flatMap((item) => item.frame.entries), { from: link.region })
        .then((result) => ({ ok: true as const, applied: result.applied }), (error: unknown) => ({ ok: false as const, error })),
      (result) => {
        if (result.ok) {
          this.stats.applied += result.applied;
          const end = conn.dialer.node === this.id ? conn.dialer : conn.acceptor;
          if (link.conn === conn && end.state === 'open') {
            const peer = this.peerState();
            for (const { frame } of current) this.sendFrame(link, conn, { t: 'ack', id: frame.id, last: frame.last, peer, ...(frame.lane === undefined ? {} : { lane: frame.lane }) });
          }
          return;
        }
        const error = result.error;
        const end = conn.dialer.node === this.id ? conn.dialer : conn.acceptor;
        if (isTesseraError(error, 'ERR_POLICY_REJECTED') && link.conn === conn && end.state === 'open') {
          const all = current.flatMap((item) => item.frame.entries.map((entry) => ({ entry })));
          const indexes = (error as TesseraError & { rejected?: number[] }).rejected ?? [];
          const first = current[0]!.frame;
          this.stats.rejectsSent++;
          this.sendFrame(link, conn, { t: 'reject', id: first.id, last: first.last, seqs: indexes.map((i) => all[i]!.entry.seq).filter((seq) => seq > 0), code: error.code, ...(first.lane === undefined ? {} : { lane: first.lane }) });
          this.offerPolicy(link, conn);
          this.drop(link, conn, closeCodes.policy, `policy refused ${indexes.length} entries of batch ${first.id}`);
          return;
        }
        if (isTesseraError(error, 'ERR_STORE_CLOSED')) return;
        if (!isTesseraError(error)) throw error;
        this.drop(link, conn, closeCodes.protocol, `batch rejected: ${error.code}`);
      },
    );
    if (outcome === 'done') more();
  }

  private step(link: SimLink, conn: SimConn, lane: SimLane, input: SenderInput): void {
    this.run(link, conn, lane, lane.sender.step(input, this.now()));
  }

  private run(link: SimLink, conn: SimConn, lane: SimLane, effects: readonly SenderEffect[]): void {
    for (const effect of effects) {
      if (link.conn !== conn) return;
      switch (effect.kind) {
        case 'read': {
          const head = this.replica!.lastSeq;
          this.disk(`read-${link.peer}`, async (replica) => {
            try {
              const { entries } = await replica.deltasSince(effect.after, { limit: effect.limit });
              const denied = await this.judge(replica, link, entries.map((entry) => entry.seq), entries);
              return { entries, denied, truncated: false as const };
            } catch (error) {
              if (isTesseraError(error, 'ERR_LOG_TRUNCATED')) return { truncated: true as const, committed: replica.committedSeq };
              throw error;
            }
          }, (result) => {
            if (link.conn !== conn) return;
            if (result.truncated) {
              this.stats.catchUps++;
              this.step(link, conn, lane, { kind: 'truncated', committed: result.committed });
            } else {
              this.step(link, conn, lane, { kind: 'read', after: effect.after, entries: result.entries, head, denied: result.denied });
            }
          });
          break;
        }
        case 'scan':
          this.disk(`scan-${link.peer}`, async (replica) => {
            const { entries, next } = await replica.documentsAfter(effect.after, effect.limit);
            const denied = await this.judge(replica, link, entries.map((entry) => entry.position), entries);
            return { entries, next, denied };
          }, ({ entries, next, denied }) => {
            if (link.conn === conn) this.step(link, conn, lane, { kind: 'scanned', after: effect.after, entries, next, denied });
          });
          break;
        case 'send':
          this.host.observer.sent(this, link.peer, effect.entries);
          this.sendFrame(link, conn, { t: effect.frame, id: effect.id, last: effect.last, entries: effect.entries, ...(lane.id === 'main' ? {} : { lane: lane.id }) });
          break;
        case 'persist-cursor':
          this.persistCursor(link, lane, effect.cursor);
          break;
        case 'wake': {
          const generation = link.generation;
          this.timer(effect.atMs - this.now(), `wake-${link.peer}`, () => {
            if (link.conn === conn && link.generation === generation) this.step(link, conn, lane, { kind: 'tick' });
          });
          break;
        }
        case 'protocol-error':
          this.drop(link, conn, closeCodes.protocol, effect.reason);
          break;
      }
    }
  }

  private async judge<Id extends number | string>(replica: Replica, link: SimLink, ids: readonly Id[], entries: readonly LogEntry[]): Promise<Set<Id>> {
    const { allowed } = await replica.sendable(entries, link.region);
    const denied = new Set<Id>();
    entries.forEach((entry, i) => {
      if (allowed[i] === true && !(typeof ids[i] === 'number' && link.rejectedSeqs.has(entry.seq))) return;
      denied.add(ids[i]!);
      if (entry.kind === 'purge' || entry.kind === 'state') return;
      link.deniedSinceAudit.set(entry.dataset, (link.deniedSinceAudit.get(entry.dataset) ?? 0) + 1);
    });
    return denied;
  }

  private persistCursor(link: SimLink, lane: SimLane, cursor: number): void {
    lane.cursorWanted = Math.max(lane.cursorWanted, cursor);
    if (lane.cursorWriting) return;
    lane.cursorWriting = true;
    const writeLatest = (): void => {
      this.disk(`cursor-write-${link.peer}`, async (replica) => {
        const target = lane.cursorWanted;
        await replica.setCursor(link.peer, target, lane.id);
        return target;
      }, (target) => {
        lane.cursorWritten = target;
        if (lane.cursorWritten < lane.cursorWanted) writeLatest();
        else lane.cursorWriting = false;
      });
    };
    writeLatest();
  }

  private onReplicaChange(change: ChangeEvent | null): void {
    if (this.replica === null) return;
    if (change !== null) this.host.observer.changed(this, change.dataset, change.key);
    const head = this.replica.lastSeq;
    for (const link of this.links.values()) {
      if (link.state !== 'open' || link.conn === null) continue;
      for (const lane of link.lanes.values()) this.step(link, link.conn, lane, { kind: 'appended', head });
    }
  }

  private async pingAll(): Promise<void> {
    const nowMs = this.now();
    await this.auditDenied(nowMs);
    if (this.replica === null) return;
    const timing = this.host.timing;
    for (const link of this.links.values()) {
      const conn = link.conn;
      if (link.state !== 'open' || conn === null) continue;
      if (nowMs - link.lastHeardMs > timing.pingIntervalMs * timing.silentIntervalsMax) {
        link.lastError = 'silent';
        this.host.observer.trace(`${this.id}: link to ${link.peer} silent, terminated`);
        this.host.network.terminate(conn, this.id);
        continue;
      }
      const sentAts = [...link.lanes.values()].map((lane) => lane.sender.snapshot(nowMs).oldestInflightSentAtMs).filter((ms): ms is number => ms !== null);
      const sentAtMs = sentAts.length === 0 ? null : Math.min(...sentAts);
      if (sentAtMs !== null && nowMs - sentAtMs > timing.ackTimeoutMs) {
        this.host.observer.trace(`${this.id}: link to ${link.peer} ack timeout, terminated`);
        this.host.network.terminate(conn, this.id);
        continue;
      }
      this.sendFrame(link, conn, { t: 'ping', ms: Math.max(0, Math.floor(nowMs)), peer: this.peerState() });
    }
  }

  private async auditDenied(nowMs: number): Promise<void> {
    if (nowMs - this.lastDeniedAuditMs < this.host.timing.deniedAuditIntervalMs) return;
    this.lastDeniedAuditMs = nowMs;
    for (const link of this.links.values()) {
      if (link.deniedSinceAudit.size === 0) continue;
      const datasets = Object.fromEntries([...link.deniedSinceAudit].sort(([a], [b]) => (a < b ? -1 : 1)));
      link.deniedSinceAudit.clear();
      const outcome = await this.operate((replica) => replica.recordAudit('send-denied', { peer: link.peer, region: link.region, datasets }), () => undefined);
      if (outcome !== 'done') return;
    }
  }

  private peerState(): PeerState {
    const down = [...this.links.values()].filter((link) => link.state !== 'open').map((link) => link.peer);
    return { have: this.replica!.frontier(), down };
  }

  private sendFrame(link: SimLink, conn: SimConn, frame: Frame, handshake = false): void {
    const end = conn.dialer.node === this.id ? conn.dialer : conn.acceptor;
    if (end.state !== 'open' || (!handshake && link.conn !== conn)) return;
    this.host.network.send(conn, this.id, encodeFrame(frame));
  }

  /** Per link: state, lanes' cursors and backlog (for quiescence and reports). */
  linkViews(): Array<{ peer: string; state: LinkState; lanes: Array<{ id: string; cursor: number; head: number; inflight: number; catchingUp: boolean }>; applying: boolean }> {
    const nowMs = this.now();
    return [...this.links.values()].map((link) => ({
      peer: link.peer,
      state: link.state,
      applying: link.applying,
      lanes: [...link.lanes.values()].map((lane) => {
        const view = lane.sender.snapshot(nowMs);
        return { id: lane.id, cursor: view.cursor, head: view.head, inflight: view.inflightBatches, catchingUp: lane.sender.catchingUp };
      }),
    }));
  }
}
