/**
 * A node's replication: one WebSocket per peer pair carrying a directed stream each way. The node with the
 * lower id dials, the other accepts; a dialer that loses its link reconnects with exponential back-off and full
 * jitter. Each stream's sending side is a `LinkSender` (a pure state machine); this file carries out its
 * effects — log reads, frames, durable cursors, timers — and applies incoming batches to the replica,
 * acknowledging each only once `applyDeltas` has made it durable.
 */
import { type IncomingMessage } from 'node:http';
import { type Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { type Dot, TesseraError, isTesseraError, parsePolicy } from '@tessera/core';
import { type ChangeEvent, type LogEntry, type Replica, policyHash } from '@tessera/store';
import { helloProof, newNonce, proofMatches, welcomeProof } from './auth.js';
import { RateGate, type RateLimits, backoffMs } from './cadence.js';
import { type Frame, type PeerState, type PolicyStamp, decodeFrame, encodeFrame, frameBytesMax, protocolVersion } from './protocol.js';
import { type FixedCadence, type LaneSpec, LinkSender, type SenderEffect, type SenderInput } from './sender.js';

/** A peer as the cluster config names it. */
export interface PeerConfig {
  readonly node: string;
  readonly region: string;
  /** Where to dial it: `ws://host:port/v1/replicate`. */
  readonly url: string;
}

/** Options of a node's replication. */
export interface SyncOptions {
  readonly replica: Replica;
  readonly cluster: string;
  readonly secret: Uint8Array;
  readonly peers: readonly PeerConfig[];
  readonly limits?: RateLimits;
  /** Called after a newer policy version received from a peer was installed (the replica enforces it). */
  readonly onPolicy?: (event: { version: number; from: string }) => void;

  /**
   * Forward a third node's changes to a peer that lacks them and reports its own link to that node down
   * (default true). In a healthy mesh every change is still sent once per target, by its origin.
   */
  readonly forward?: boolean;
  /** Structured events; never given keys or values. */
  readonly log?: (event: Record<string, unknown>) => void;
  readonly random?: () => number;
  readonly wallClock?: () => number;
  readonly handshakeTimeoutMs?: number;
  readonly pingIntervalMs?: number;
  readonly ackTimeoutMs?: number;
  /** How often the log is truncated (default 5 s). */
  readonly retentionIntervalMs?: number;
  /** How often the sends the policy denied are audited, one entry per link (default `deniedAuditIntervalMs`, 30 s). */
  readonly deniedAuditIntervalMs?: number;
  /** The log's size bound in entries; past it, lagging peers are caught up from document states. */
  readonly logEntriesMax?: number;
  /** Flush every this many ms instead of adaptively (links staggered, ±10% jitter). */
  readonly fixedCadenceMs?: number;
  /**
   * Lanes: groups of datasets with their own stream, cursor, priority (0 highest) and cadence on every link,
   * sharing the link's rate limit (higher priority first). Datasets no lane names travel in the `main` lane.
   */
  readonly lanes?: readonly LaneConfig[];
}

/** One lane as configured. */
export interface LaneConfig {
  readonly id: string;
  readonly datasets: readonly string[];
  readonly priority: number;
  /** Flush every this many ms (staggered per link, ±10% jitter) instead of adaptively. */
  readonly fixedCadenceMs?: number;
  /** The lane's own rate limit on every link, within the link's. */
  readonly limits?: RateLimits;
}

/** Lane ids: `main` or `[a-z0-9-]`, at most 32 characters. */
export const laneIdPattern = /^[a-z0-9][a-z0-9-]{0,31}$/;
/** Lane priorities: high, normal (the main lane), low. */
export const lanePriorities = { high: 0, normal: 1, low: 2 } as const;
const mainLanePriority = lanePriorities.normal;
/** Lanes per link. */
export const lanesMax = 16;

/** Builds the lanes of every link: the configured ones plus `main` for every other dataset. */
export function buildLanes(configs: readonly LaneConfig[], mainCadenceMs: number | undefined): Array<{ spec: LaneSpec; fixedCadenceMs?: number }> {
  if (configs.length > lanesMax - 1) throw new TesseraError('ERR_OPTION_INVALID', `${configs.length} lanes exceed the limit of ${lanesMax - 1}`);
  const named = new Set<string>();
  const ids = new Set<string>(['main']);
  const lanes: Array<{ spec: LaneSpec; fixedCadenceMs?: number }> = [];
  for (const config of configs) {
    if (!laneIdPattern.test(config.id) || ids.has(config.id)) {
      throw new TesseraError('ERR_OPTION_INVALID', `lane id ${JSON.stringify(config.id)} is invalid or repeated (use [a-z0-9-], at most 32 characters; "main" is reserved)`);
    }
    ids.add(config.id);
    for (const dataset of config.datasets) {
      if (named.has(dataset)) throw new TesseraError('ERR_OPTION_INVALID', `dataset ${JSON.stringify(dataset)} is in two lanes`);
      named.add(dataset);
    }
    lanes.push({
      spec: { id: config.id, datasets: new Set(config.datasets), excluded: new Set(), priority: config.priority, ...(config.limits === undefined ? {} : { limits: config.limits }) },
      fixedCadenceMs: config.fixedCadenceMs,
    });
  }
  // Datasets without a lane of their own have normal priority.
  lanes.push({ spec: { id: 'main', datasets: null, excluded: named, priority: mainLanePriority }, fixedCadenceMs: mainCadenceMs });
  return lanes;
}

/** Log retention defaults. */
export const retentionIntervalMsDefault = 5_000;
export const logEntriesMaxDefault = 1_000_000;
/** Entries joined in one apply when received batches queue up (bounded by applyDeltas' own batch limit). */
export const applyGroupEntriesMax = 5_000;
export const applyGroupBytesMax = 32 * 1024 * 1024;
/** Session-token reads waiting at once; more answer "not yet" at once. */
export const waitersMax = 10_000;
/** Defaults. */
export const handshakeTimeoutMsDefault = 5_000;
export const pingIntervalMsDefault = 2_000;
/** A link that has heard nothing for this many ping intervals is presumed dead (a silent partition). */
export const silentIntervalsMax = 4;
/**
 * A batch unacknowledged this long resets the link, and streaming resumes from the durable cursor: the
 * path lost data while staying up, or the receiver is stuck. Pings alone cannot tell.
 */
export const ackTimeoutMsDefault = 10_000;
/** WebSocket close codes. */
export const closeCodes = { refused: 4401, protocol: 4400, policy: 4403, replaced: 4409, shutdown: 1001 } as const;
/** Trace ids of recent local writes kept for their batches (oldest forgotten first). */
export const tracesMax = 10_000;
/** Trace ids named in one `batch-applied` log event. */
export const tracesLoggedMax = 16;
/** Datasets counted separately in a link's traffic (the rest as `(other)`), so metric labels stay bounded. */
export const trafficDatasetsMax = 256;
/** Entries a link remembers the peer's policy refused (never resent on that link until the node restarts). */
export const rejectedSeqsMax = 100_000;
/** Denied sends are audited in one entry per link and interval, not one per entry. */
export const deniedAuditIntervalMs = 30_000;

/** A received batch made durable, as `onApplied` listeners see it. */
export interface AppliedEvent {
  readonly peer: string;
  readonly region: string;
  readonly entries: ReadonlyArray<{ readonly dataset: string; readonly hlcMs: number }>;
}

/** A link's state as status pages show it. */
export type LinkState = 'idle' | 'connecting' | 'handshaking' | 'open' | 'backoff' | 'closed';

/** One peer link's status. */
export interface LinkStatus {
  readonly peer: string;
  readonly region: string;
  readonly state: LinkState;
  readonly role: 'dial' | 'accept';
  readonly lastError: string | null;
  readonly openSinceMs: number | null;
  readonly reconnects: number;
  readonly cursor: number;
  readonly head: number;
  readonly backlogEntries: number;
  /** A state catch-up is running (the peer was behind the retained log). */
  readonly catchingUp: boolean;
  readonly catchUps: number;
  /** Third-origin entries sent to this peer because its own link to their origin was down. */
  readonly forwardedEntries: number;
  readonly inflightBatches: number;
  readonly windowBatches: number;
  readonly rttMs: number | null;
  /** Age of the oldest entry sent but not yet acknowledged (≈ replication lag to this peer). */
  readonly lagMs: number;
  /** Entries and wire bytes per second over the last ping interval. */
  readonly rates: { readonly sentEntriesPerSecond: number; readonly sentBytesPerSecond: number; readonly receivedEntriesPerSecond: number; readonly receivedBytesPerSecond: number };
  /** `adaptive`, or `fixed N ms`. */
  readonly cadence: string;
  /** Per lane: its cursor, backlog, batches in flight, lag and entries sent. */
  readonly lanes: ReadonlyArray<{ readonly id: string; readonly priority: number; readonly cursor: number; readonly backlogEntries: number; readonly inflightBatches: number; readonly lagMs: number; readonly sentEntries: number }>;
  readonly sent: { readonly batches: number; readonly entries: number; readonly deltaBytes: number; readonly wireBytes: number };
  readonly received: { readonly batches: number; readonly entries: number; readonly applied: number; readonly wireBytes: number };
  readonly peerPolicy: PolicyStamp | null;
  /** What the policy did on this link: entries kept from the peer, entries the peer refused, refusals of the peer's entries here, entries the shadow policy would deny. */
  readonly policy: { readonly deniedEntries: number; readonly rejectedByPeer: number; readonly rejectedHere: number; readonly shadowDenied: number };
}

const noLimits: RateLimits = { bytesPerSecondMax: null, entriesPerSecondMax: null };

/** One lane of one link: its sender and the durable-cursor writer. */
class LaneLink {
  cursorChain: Promise<unknown> = Promise.resolve();
  cursorWanted = 0;
  cursorWritten = 0;
  cursorWriting = false;

  constructor(readonly sender: LinkSender) {}

  get id(): string {
    return this.sender.lane.id;
  }
}

class PeerLink {
  state: LinkState = 'idle';
  socket: WebSocket | null = null;
  readonly lanes = new Map<string, LaneLink>();
  lastError: string | null = null;
  openSinceMs: number | null = null;
  reconnects = 0;
  attempt = 0;
  peerPolicy: PolicyStamp | null = null;
  /** Sequence numbers of this node's log that the peer's policy refused. */
  readonly rejectedSeqs = new Set<number>();
  policyCounts = { deniedEntries: 0, rejectedByPeer: 0, rejectedHere: 0, shadowDenied: 0 };
  /** Denied sends per dataset since the last audit entry. */
  deniedSinceAudit = new Map<string, number>();
  /** Entries and delta bytes per dataset, sent and received, since start. */
  readonly traffic = { sent: new Map<string, { entries: number; bytes: number }>(), received: new Map<string, { entries: number; bytes: number }>() };
  /** The peer's wall clock minus ours, estimated from the last pong (ms), or null. */
  clockSkewMs: number | null = null;
  lastHeardMs = 0;
  received = { batches: 0, entries: 0, applied: 0, wireBytes: 0 };
  /** Traffic rates over the last ping interval. */
  rates = { sentEntriesPerSecond: 0, sentBytesPerSecond: 0, receivedEntriesPerSecond: 0, receivedBytesPerSecond: 0 };
  rateSample: { atMs: number; sentEntries: number; sentBytes: number; receivedEntries: number; receivedBytes: number } | null = null;
  wireBytesSent = 0;
  applyChain: Promise<void> = Promise.resolve();
  applyQueue: Array<{ ws: WebSocket; frame: Extract<Frame, { t: 'batch' | 'state' }> }> = [];
  applying = false;
  timers = new Set<NodeJS.Timeout>();

  constructor(
    readonly config: PeerConfig,
    readonly role: 'dial' | 'accept',
    self: string,
    forward: boolean,
    limits: RateLimits,
    nowMs: number,
    lanes: ReadonlyArray<{ spec: LaneSpec; fixed: FixedCadence | null }>,
  ) {
    // The lanes of a link share its rate limit; higher-priority lanes are served first.
    const gate = new RateGate(limits, nowMs);
    for (const lane of lanes) this.lanes.set(lane.spec.id, new LaneLink(new LinkSender(config.node, self, forward, gate, nowMs, lane.fixed, lane.spec)));
  }

  /** Sender counters summed over the lanes. */
  stats(): { batches: number; entries: number; bytes: number; catchUps: number; forwardedEntries: number } {
    const out = { batches: 0, entries: 0, bytes: 0, catchUps: 0, forwardedEntries: 0 };
    for (const lane of this.lanes.values()) {
      out.batches += lane.sender.stats.batches;
      out.entries += lane.sender.stats.entries;
      out.bytes += lane.sender.stats.bytes;
      out.catchUps += lane.sender.stats.catchUps;
      out.forwardedEntries += lane.sender.stats.forwardedEntries;
    }
    return out;
  }
}

/** A node's replication with its peers. */
export class SyncNode {
  private readonly links = new Map<string, PeerLink>();
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: frameBytesMax });
  private readonly log: (event: Record<string, unknown>) => void;
  private readonly random: () => number;
  /**
   * The link machinery's clock (sender steps, timers, liveness, ack timeouts): monotonic, started at the wall
   * clock's reading. A wall clock can step back (NTP, a restored VM), and LinkSender asserts that time never does.
   */
  private readonly now: () => number;
  /** The wall clock: what peers are told in pongs, and the deadlines of session-token reads. */
  private readonly wallNow: () => number;
  private readonly handshakeTimeoutMs: number;
  private lastDeniedAuditMs = 0;
  private readonly pingIntervalMs: number;
  private readonly ackTimeoutMs: number;
  private readonly onChange = (change: ChangeEvent) => this.onReplicaChange(change);
  private readonly onAppended = () => this.onReplicaChange(null);
  private pingTimer: NodeJS.Timeout | null = null;
  private retentionTimer: NodeJS.Timeout | null = null;
  private readonly retentionIntervalMs: number;
  private readonly deniedAuditIntervalMs: number;
  private readonly logEntriesMax: number;
  private readonly waiters = new Set<{ readonly dataset: string; readonly key: string; check(): void }>();
  private closed = false;
  /** Installs of versions peers sent, one after the other; never rejects. */
  private policyInstalling: Promise<void> = Promise.resolve();
  /** Trace ids of recent local writes by sequence number, carried on the batches that send them. */
  private readonly traces = new Map<number, string>();
  private readonly appliedListeners = new Set<(event: AppliedEvent) => void>();

  constructor(private readonly options: SyncOptions) {
    this.log = options.log ?? (() => undefined);
    this.random = options.random ?? Math.random;
    this.wallNow = options.wallClock ?? Date.now;
    const wallAtStartMs = this.wallNow();
    const monotonicAtStartMs = performance.now();
    // Whole milliseconds: pings carry it as an integer.
    this.now = () => wallAtStartMs + Math.floor(performance.now() - monotonicAtStartMs);
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? handshakeTimeoutMsDefault;
    this.pingIntervalMs = options.pingIntervalMs ?? pingIntervalMsDefault;
    this.ackTimeoutMs = options.ackTimeoutMs ?? ackTimeoutMsDefault;
    this.retentionIntervalMs = options.retentionIntervalMs ?? retentionIntervalMsDefault;
    this.deniedAuditIntervalMs = options.deniedAuditIntervalMs ?? deniedAuditIntervalMs;
    this.logEntriesMax = options.logEntriesMax ?? logEntriesMaxDefault;
    const self = options.replica.node;
    const laneSpecs = buildLanes(options.lanes ?? [], options.fixedCadenceMs);
    for (const peer of options.peers) {
      if (peer.node === self) continue;
      const role = self < peer.node ? 'dial' : 'accept';
      const lanes = laneSpecs.map(({ spec, fixedCadenceMs }) => ({
        spec,
        fixed: fixedCadenceMs === undefined ? null : { intervalMs: fixedCadenceMs, offsetFraction: this.random(), jitter: this.random },
      }));
      this.links.set(peer.node, new PeerLink(peer, role, self, options.forward ?? true, options.limits ?? noLimits, this.now(), lanes));
    }
  }

  /** Starts dialing the peers this node dials, and the liveness pings. */
  start(): void {
    this.options.replica.on('change', this.onChange);
    this.options.replica.on('appended', this.onAppended);
    this.lastDeniedAuditMs = this.now();
    for (const link of this.links.values()) if (link.role === 'dial') this.dial(link);
    this.pingTimer = setInterval(() => this.pingAll(), this.pingIntervalMs);
    this.pingTimer.unref();
    this.retentionTimer = setInterval(() => void this.retain().catch((error: Error) => this.log({ event: 'retention-error', reason: codeOf(error) })), this.retentionIntervalMs);
    this.retentionTimer.unref();
  }

  /**
   * Truncates the delta log: entries every peer has acknowledged go; past `logEntriesMax`, the oldest go even
   * if a peer has not acknowledged them — that peer is then caught up from document states. Returns the floor.
   */
  async retain(): Promise<number> {
    const replica = this.options.replica;
    const cursors = await replica.cursors();
    const acknowledgedByAll = Math.min(...[...this.links.values()].flatMap((link) =>
      [...link.lanes.keys()].map((lane) => cursors[lane === 'main' ? link.config.node : `${link.config.node}/${lane}`] ?? 0)));
    // Documents handed over to other regions are purged here once every node there has acknowledged them.
    const acknowledgedIn = (region: string): number => {
      const links = [...this.links.values()].filter((link) => link.config.region === region);
      if (links.length === 0) return 0;
      return Math.min(...links.flatMap((link) => [...link.lanes.keys()].map((lane) => cursors[lane === 'main' ? link.config.node : `${link.config.node}/${lane}`] ?? 0)));
    };
    const handedOver = await replica.settleHandovers(acknowledgedIn);
    if (handedOver > 0) this.log({ event: 'handover-purged', documents: handedOver });
    const sizeBound = replica.committedSeq - this.logEntriesMax;
    const upto = Math.max(Number.isFinite(acknowledgedByAll) ? acknowledgedByAll : replica.committedSeq, sizeBound);
    if (upto <= replica.logFloor) return replica.logFloor;
    const floor = await replica.truncateLog(upto);
    this.log({ event: 'log-truncated', floor, bySizeBound: sizeBound > acknowledgedByAll });
    return floor;
  }

  /**
   * Remembers the trace id of a local write (sequence number `seq`), so that the batches carrying it name it
   * and every region logs it when applied. Bounded: the oldest are forgotten.
   */
  noteTrace(seq: number, traceId: string): void {
    if (this.traces.size >= tracesMax) this.traces.delete(this.traces.keys().next().value!);
    this.traces.set(seq, traceId);
  }

  /**
   * Calls `listener` once each received batch is durable, with each entry's dataset and origin timestamp
   * (commit-to-visible lag = now − hlcMs). For metrics; never given keys or values. Returns an unsubscribe.
   */
  onApplied(listener: (event: AppliedEvent) => void): () => void {
    this.appliedListeners.add(listener);
    return () => this.appliedListeners.delete(listener);
  }

  /** Per link: entries and bytes per dataset sent and received, and the estimated clock skew of the peer. */
  traffic(): Array<{ peer: string; region: string; sent: ReadonlyMap<string, { entries: number; bytes: number }>; received: ReadonlyMap<string, { entries: number; bytes: number }>; clockSkewMs: number | null }> {
    return [...this.links.values()].map((link) => ({ peer: link.config.node, region: link.config.region, sent: link.traffic.sent, received: link.traffic.received, clockSkewMs: link.clockSkewMs }));
  }

  /** Hands an HTTP upgrade request for `/v1/replicate` to replication. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(ws));
  }

  /** Status of every link. */
  status(): { links: LinkStatus[] } {
    const nowMs = this.now();
    return {
      links: [...this.links.values()].map((link) => {
        const views = [...link.lanes.values()].map((lane) => ({ id: lane.id, view: lane.sender.snapshot(nowMs), sender: lane.sender }));
        const cursor = Math.min(...views.map(({ view }) => view.cursor));
        const stats = link.stats();
        const rtts = views.map(({ view }) => view.rttMs).filter((rtt): rtt is number => rtt !== null);
        return {
          peer: link.config.node,
          region: link.config.region,
          state: link.state,
          role: link.role,
          lastError: link.lastError,
          openSinceMs: link.openSinceMs,
          reconnects: link.reconnects,
          cursor,
          head: Math.max(...views.map(({ view }) => view.head), this.options.replica.lastSeq),
          backlogEntries: Math.max(0, this.options.replica.lastSeq - cursor),
          catchingUp: views.some(({ sender }) => sender.catchingUp),
          catchUps: stats.catchUps,
          forwardedEntries: stats.forwardedEntries,
          inflightBatches: views.reduce((sum, { view }) => sum + view.inflightBatches, 0),
          windowBatches: views.reduce((sum, { view }) => sum + view.windowBatches, 0),
          rttMs: rtts.length === 0 ? null : Math.max(...rtts),
          lagMs: Math.max(0, ...views.map(({ view }) => view.oldestUnackedAgeMs ?? 0)),
          rates: { ...link.rates },
          cadence: views.length === 1 ? cadenceName(this.options.fixedCadenceMs) : 'per lane',
          lanes: views.map(({ id, view, sender }) => ({
            id, priority: sender.lane.priority, cursor: view.cursor, backlogEntries: Math.max(0, this.options.replica.lastSeq - view.cursor),
            inflightBatches: view.inflightBatches, lagMs: view.oldestUnackedAgeMs ?? 0, sentEntries: sender.stats.entries,
          })),
          sent: { batches: stats.batches, entries: stats.entries, deltaBytes: stats.bytes, wireBytes: link.wireBytesSent },
          received: { ...link.received },
          peerPolicy: link.peerPolicy,
          policy: { ...link.policyCounts },
        };
      }),
    };
  }

  /** Resolves true once this node's copy of (dataset, key) holds `dot`, false at `deadlineMs` (wall clock). */
  async waitFor(dataset: string, key: string, dot: Dot, deadlineMs: number): Promise<boolean> {
    const holds = async () => (await this.options.replica.state(dataset, key))?.ctx.has(dot) ?? false;
    if (await holds()) return true;
    if (this.waiters.size >= waitersMax) return false;
    return new Promise<boolean>((resolve) => {
      const waiter = {
        dataset, key,
        check: () => void holds().then((yes) => yes && finish(true), () => finish(false)),
      };
      const finish = (result: boolean) => {
        if (!this.waiters.delete(waiter)) return;
        clearTimeout(timer);
        resolve(result);
      };
      const timer = setTimeout(() => void holds().then(finish, () => finish(false)), Math.max(0, deadlineMs - this.wallNow()));
      this.waiters.add(waiter);
    });
  }

  /** Waits (up to `timeoutMs`) until every open link has acknowledged everything logged so far. */
  async flush(timeoutMs: number): Promise<boolean> {
    const target = this.options.replica.lastSeq;
    const deadline = this.now() + timeoutMs;
    for (;;) {
      const open = [...this.links.values()].filter((link) => link.state === 'open');
      // A lane is done when the peer acknowledged the target, or when the lane has found that its log ends
      // before it (sequence numbers a crash left unused are never written, so no cursor reaches them).
      const done = (lane: LaneLink) => {
        const view = lane.sender.snapshot(this.now());
        return view.cursor >= target || view.head < target;
      };
      if (open.every((link) => [...link.lanes.values()].every(done))) return true;
      if (this.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Closes every link and stops reconnecting. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.options.replica.off('change', this.onChange);
    this.options.replica.off('appended', this.onAppended);
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    if (this.retentionTimer !== null) clearInterval(this.retentionTimer);
    for (const link of this.links.values()) {
      for (const timer of link.timers) clearTimeout(timer);
      link.timers.clear();
      link.socket?.close(closeCodes.shutdown, 'node shutting down');
      link.state = 'closed';
    }
    await Promise.all([...this.links.values()].map((link) => link.applyChain.then(() => Promise.all([...link.lanes.values()].map((lane) => lane.cursorChain))).catch(() => undefined)));
    // Denials since the last audit entry would be lost with the process: audit them now.
    await this.auditDenied(this.now(), true);
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  // ---------------------------------------------------------------- connections

  private dial(link: PeerLink): void {
    if (this.closed) return;
    link.state = 'connecting';
    const ws = new WebSocket(link.config.url, { maxPayload: frameBytesMax, handshakeTimeout: this.handshakeTimeoutMs, perMessageDeflate: false });
    ws.binaryType = 'nodebuffer';
    let stage: 'challenge' | 'welcome' | 'open' = 'challenge';
    let dialerNonce: Uint8Array | null = null;
    let acceptorNonce: Uint8Array | null = null;
    const handshakeTimer = this.timer(link, () => this.drop(link, ws, closeCodes.protocol, 'handshake timed out'), this.handshakeTimeoutMs);
    ws.on('open', () => {
      link.state = 'handshaking';
    });
    ws.on('message', (data: RawData) => {
      const bytes = toBytes(data);
      const frame = this.parse(link, ws, bytes);
      if (frame === null) return;
      if (stage === 'open') {
        this.onFrame(link, ws, frame, bytes.length);
        return;
      }
      if (stage === 'challenge' && frame.t === 'challenge') {
        if (frame.v !== protocolVersion) {
          this.drop(link, ws, closeCodes.protocol, `peer speaks protocol version ${frame.v}, this node ${protocolVersion}`);
          return;
        }
        acceptorNonce = frame.nonce;
        dialerNonce = newNonce();
        const self = this.options.replica;
        this.sendFrame(link, ws, {
          t: 'hello', v: protocolVersion, cluster: this.options.cluster, node: self.node, region: self.region, policy: self.policyStamp(),
          nonce: dialerNonce, proof: helloProof(this.options.secret, this.options.cluster, self.node, self.region, acceptorNonce, dialerNonce),
        });
        stage = 'welcome';
        return;
      }
      if (stage === 'welcome' && frame.t === 'welcome') {
        const expected = welcomeProof(this.options.secret, this.options.cluster, frame.node, frame.region, acceptorNonce!, dialerNonce!);
        if (frame.node !== link.config.node || frame.region !== link.config.region || !proofMatches(expected, frame.proof)) {
          this.drop(link, ws, closeCodes.refused, `peer at ${link.config.url} failed authentication (expected ${link.config.node})`);
          return;
        }
        clearTimeout(handshakeTimer);
        link.timers.delete(handshakeTimer);
        stage = 'open';
        link.peerPolicy = frame.policy;
        this.established(link, ws);
        return;
      }
      if (frame.t === 'refuse') {
        this.drop(link, ws, closeCodes.refused, `refused by ${link.config.node}: ${frame.code}: ${frame.reason}`);
        return;
      }
      this.drop(link, ws, closeCodes.protocol, `unexpected ${frame.t} frame during the handshake`);
    });
    ws.on('error', (error) => {
      link.lastError = error.message;
    });
    ws.on('close', (code, reason) => {
      clearTimeout(handshakeTimer);
      link.timers.delete(handshakeTimer);
      this.onClosed(link, ws, code, reason.toString());
    });
    link.socket = ws;
  }

  private accept(ws: WebSocket): void {
    ws.binaryType = 'nodebuffer';
    const acceptorNonce = newNonce();
    let link: PeerLink | null = null;
    const timer = setTimeout(() => refuse('handshake-timeout', 'no hello in time'), this.handshakeTimeoutMs);
    const refuse = (code: string, reason: string) => {
      clearTimeout(timer);
      this.log({ event: 'peer-refused', code, reason });
      try {
        ws.send(encodeFrame({ t: 'refuse', code, reason }));
      } finally {
        ws.close(closeCodes.refused, code);
      }
    };
    ws.on('error', () => undefined);
    ws.once('close', () => clearTimeout(timer));
    ws.once('message', (data: RawData) => {
      let frame: Frame;
      try {
        frame = decodeFrame(toBytes(data));
      } catch (error) {
        refuse('bad-frame', codeOf(error));
        return;
      }
      if (frame.t !== 'hello') return refuse('bad-frame', `expected hello, got ${frame.t}`);
      if (frame.v !== protocolVersion) return refuse('protocol-version', `this node speaks protocol version ${protocolVersion}`);
      if (frame.cluster !== this.options.cluster) return refuse('cluster-mismatch', 'not a member of this cluster');
      const candidate = this.links.get(frame.node);
      if (candidate === undefined || candidate.config.region !== frame.region || candidate.role !== 'accept') {
        return refuse('unknown-node', `node ${frame.node} is not a peer this node accepts`);
      }
      const expected = helloProof(this.options.secret, this.options.cluster, frame.node, frame.region, acceptorNonce, frame.nonce);
      if (!proofMatches(expected, frame.proof)) return refuse('bad-proof', 'authentication failed');
      clearTimeout(timer);
      link = candidate;
      // A peer that reconnects replaces its previous connection (which may be a silent zombie). The old
      // socket is detached first: its close event, arriving later, is then ignored as stale.
      const previous = link.socket;
      if (previous !== null && previous !== ws) {
        this.detach(link);
        if (previous.readyState === WebSocket.OPEN) previous.close(closeCodes.replaced, 'replaced by a new connection');
        else previous.terminate();
      }
      link.socket = ws;
      link.peerPolicy = frame.policy;
      const self = this.options.replica;
      this.sendFrame(link, ws, {
        t: 'welcome', node: self.node, region: self.region, policy: self.policyStamp(),
        proof: welcomeProof(this.options.secret, this.options.cluster, self.node, self.region, acceptorNonce, frame.nonce),
      });
      const accepted = link;
      ws.on('message', (next: RawData) => {
        const bytes = toBytes(next);
        const parsed = this.parse(accepted, ws, bytes);
        if (parsed !== null) this.onFrame(accepted, ws, parsed, bytes.length);
      });
      ws.on('close', (code, reason) => this.onClosed(accepted, ws, code, reason.toString()));
      this.established(accepted, ws);
    });
    ws.send(encodeFrame({ t: 'challenge', v: protocolVersion, nonce: acceptorNonce }));
  }

  private established(link: PeerLink, ws: WebSocket): void {
    link.state = 'open';
    link.openSinceMs = this.now();
    link.lastHeardMs = this.now();
    link.lastError = null;
    link.attempt = 0;
    this.log({ event: 'link-open', peer: link.config.node, peerRegion: link.config.region, role: link.role });
    const replica = this.options.replica;
    this.offerPolicy(link, ws);
    for (const lane of link.lanes.values()) {
      void replica.cursor(link.config.node, lane.id).then((cursor) => {
        if (link.socket !== ws || link.state !== 'open') return;
        this.step(link, ws, lane, { kind: 'open', cursor, head: replica.lastSeq, floor: replica.logFloor, committed: replica.committedSeq });
      }, (error: Error) => this.drop(link, ws, closeCodes.protocol, `cursor read failed: ${codeOf(error)}`));
    }
  }

  /** Detaches the link's current socket: the sender forgets what was in flight on it. */
  private detach(link: PeerLink): void {
    link.socket = null;
    for (const lane of link.lanes.values()) lane.sender.step({ kind: 'closed' }, this.now());
    link.openSinceMs = null;
  }

  private onClosed(link: PeerLink, ws: WebSocket, code: number, reason: string): void {
    if (link.socket !== ws) return;
    const wasOpen = link.state === 'open';
    this.detach(link);
    if (code !== closeCodes.shutdown || reason !== 'node shutting down') link.lastError = link.lastError ?? `closed (${code}${reason ? `: ${reason}` : ''})`;
    if (wasOpen) this.log({ event: 'link-closed', peer: link.config.node, code, reason });
    if (this.closed) {
      link.state = 'closed';
      return;
    }
    if (link.role === 'dial') {
      link.state = 'backoff';
      link.reconnects++;
      const delayMs = backoffMs(link.attempt++, this.random());
      this.timer(link, () => this.dial(link), delayMs);
    } else {
      link.state = 'idle';
    }
  }

  /** Closes a connection with a reason; the close handler schedules what comes next. */
  private drop(link: PeerLink, ws: WebSocket, code: number, reason: string): void {
    if (link.socket !== ws) {
      // A connection the link already left behind: just make sure it is gone.
      ws.terminate();
      return;
    }
    link.lastError = reason;
    this.log({ event: 'link-error', peer: link.config.node, code, reason });
    if (ws.readyState === WebSocket.OPEN) ws.close(code, reason.slice(0, 120));
    else ws.terminate();
    // A socket that never opened fires no close event on some paths: make sure the link moves on.
    if (ws.readyState === WebSocket.CLOSED) this.onClosed(link, ws, code, reason);
  }

  // ---------------------------------------------------------------- streaming

  /** Decodes a peer's frame; a malformed one closes the link with the reason (and yields null). */
  private parse(link: PeerLink, ws: WebSocket, bytes: Uint8Array): Frame | null {
    try {
      return decodeFrame(bytes);
    } catch (error) {
      this.drop(link, ws, closeCodes.protocol, `malformed frame: ${codeOf(error)}`);
      return null;
    }
  }

  private onFrame(link: PeerLink, ws: WebSocket, frame: Frame, wireBytes: number): void {
    if (link.socket !== ws) return;
    link.lastHeardMs = this.now();
    link.received.wireBytes += wireBytes;
    switch (frame.t) {
      case 'batch':
      case 'state':
        link.received.batches++;
        link.received.entries += frame.entries.length;
        link.applyQueue.push({ ws, frame });
        if (!link.applying) link.applyChain = this.drainApplies(link);
        return;
      case 'ack': {
        const lane = link.lanes.get(frame.lane ?? 'main');
        if (lane === undefined) {
          this.drop(link, ws, closeCodes.protocol, `ack for unknown lane ${JSON.stringify(frame.lane)}`);
          return;
        }
        this.step(link, ws, lane, { kind: 'ack', id: frame.id, last: frame.last });
        if (frame.peer !== undefined) for (const each of link.lanes.values()) this.step(link, ws, each, { kind: 'peer-state', ...frame.peer });
        return;
      }
      case 'ping':
        this.sendFrame(link, ws, { t: 'pong', ms: frame.ms, at: this.wallNow() });
        if (frame.peer !== undefined) for (const each of link.lanes.values()) this.step(link, ws, each, { kind: 'peer-state', ...frame.peer });
        return;
      case 'pong':
        if (frame.at !== undefined) {
          // The peer answered halfway through the round trip (on average): its clock minus ours.
          // (The round trip is timed on the monotonic clock; the peer's wall clock is compared with ours.)
          const nowMs = this.now();
          if (nowMs >= frame.ms) link.clockSkewMs = frame.at - (this.wallNow() - (nowMs - frame.ms) / 2);
        }
        return;
      case 'reject': {
        // The peer's policy refused these entries and applied nothing of the batch. Resume from the cursor
        // without them: the link closes, and the next connection skips them — unless the peer runs an older
        // policy version: the next handshake sends it ours, and the entries go again.
        const behind = (link.peerPolicy?.version ?? 0) < (this.options.replica.policy?.version ?? 0);
        for (const seq of behind ? [] : frame.seqs) {
          if (link.rejectedSeqs.size >= rejectedSeqsMax) link.rejectedSeqs.delete(link.rejectedSeqs.values().next().value!);
          link.rejectedSeqs.add(seq);
        }
        link.policyCounts.rejectedByPeer += frame.seqs.length;
        this.log({ event: 'policy-rejected-by-peer', peer: link.config.node, entries: frame.seqs.length, code: frame.code });
        this.drop(link, ws, closeCodes.policy, `peer's policy refused ${frame.seqs.length} entries of batch ${frame.id}`);
        return;
      }
      case 'policy':
        // Batches that follow the frame wait for the install (drainApplies): they were sent under this version.
        this.policyInstalling = this.policyInstalling.then(() => this.receivePolicy(link, frame.version, frame.text));
        return;
      default:
        this.drop(link, ws, closeCodes.protocol, `unexpected ${frame.t} frame on an open link`);
    }
  }

  /** Sends the enforced policy to a peer whose handshake announced an older version. */
  private offerPolicy(link: PeerLink, ws: WebSocket): void {
    const policy = this.options.replica.policy;
    if (policy === null || (link.peerPolicy?.version ?? 0) >= policy.version) return;
    this.sendFrame(link, ws, { t: 'policy', version: policy.version, text: policy.text });
    link.peerPolicy = this.options.replica.policyStamp();
  }

  /** Installs a newer policy version a peer sent, then offers it to the other peers. */
  private async receivePolicy(link: PeerLink, version: number, text: string): Promise<void> {
    const replica = this.options.replica;
    if (version <= (replica.policy?.version ?? 0)) return;
    try {
      const policy = parsePolicy(text, `policy v${version} from ${link.config.node}`);
      if (policy.version !== version) throw new TesseraError('ERR_POLICY_INVALID', `the frame says version ${version}, the text ${policy.version}`);
      const report = await replica.installPolicy(policy, 'enforce', `peer:${link.config.node}`);
      // The peer runs the version it sent (ours may be newer by now: policyChanged offers it then).
      link.peerPolicy = { version: policy.version, hash: policyHash(policy) };
      // Two peers can send one version at once: the install that changed nothing was the second.
      if (report === null) return;
      this.log({ event: 'policy-installed', version, from: link.config.node });
      this.options.onPolicy?.({ version, from: link.config.node });
      this.policyChanged();
    } catch (error) {
      // A newer version another peer sent while this one was waiting to install is no conflict worth a word.
      if (isTesseraError(error, 'ERR_POLICY_CONFLICT') && version <= (replica.policy?.version ?? 0)) return;
      this.log({ event: 'policy-refused', version, from: link.config.node, reason: codeOf(error) });
    }
  }

  /**
   * After the enforced policy changed (from a peer or the API): offer it to every peer that has an older one,
   * and forget which entries peers refused (entries not yet passed are offered again; a cursor never goes back,
   * so refused entries it already passed stay unsent). Documents the new policy opens to a region travel as the
   * state entries each holder appended when it installed the policy.
   */
  policyChanged(): void {
    for (const link of this.links.values()) {
      link.rejectedSeqs.clear();
      const ws = link.socket;
      if (link.state !== 'open' || ws === null) continue;
      this.offerPolicy(link, ws);
    }
  }

  /**
   * Applies received batches in order. Batches that queued up while the previous apply was committing are
   * joined in one `applyDeltas` (one durable commit), then acknowledged one by one, in order.
   */
  private async drainApplies(link: PeerLink): Promise<void> {
    link.applying = true;
    try {
      while (link.applyQueue.length > 0) {
        const group: Array<{ ws: WebSocket; frame: Extract<Frame, { t: 'batch' | 'state' }> }> = [];
        let entries = 0;
        let bytes = 0;
        const sizeOf = (frame: { entries: readonly { delta: Uint8Array }[] }) => frame.entries.reduce((sum, entry) => sum + entry.delta.length, 0);
        while (link.applyQueue.length > 0) {
          const next = link.applyQueue[0]!;
          const nextBytes = sizeOf(next.frame);
          if (group.length > 0 && (entries + next.frame.entries.length > applyGroupEntriesMax || bytes + nextBytes > applyGroupBytesMax)) break;
          link.applyQueue.shift();
          group.push(next);
          entries += next.frame.entries.length;
          bytes += nextBytes;
        }
        // A newer version a peer sent is installed before batches received after it are judged: the sender
        // enforces it already, so they may hold documents it opens to this region (refused under the old
        // version, the sender would not send them again).
        await this.policyInstalling;
        const ws = group[0]!.ws;
        const current = group.filter((item) => item.ws === ws && link.socket === ws);
        if (current.length === 0) continue;
        try {
          const entriesNow = current.flatMap((item) => item.frame.entries);
          const result = await this.options.replica.applyDeltas(entriesNow, { from: link.config.region });
          link.received.applied += result.applied;
          for (const entry of entriesNow) count(link.traffic.received, entry.dataset, entry.delta.length);
          if (this.appliedListeners.size > 0) {
            const event: AppliedEvent = { peer: link.config.node, region: link.config.region, entries: entriesNow.map((entry) => ({ dataset: entry.dataset, hlcMs: entry.hlc.ms })) };
            for (const listener of this.appliedListeners) listener(event);
          }
          const traces = current.flatMap((item) => (item.frame.t === 'batch' ? item.frame.traces ?? [] : []));
          if (traces.length > 0) {
            // A write can be followed from its origin to every region by its trace id.
            this.log({ event: 'batch-applied', peer: link.config.node, entries: entriesNow.length, applied: result.applied, traceIds: traces.slice(0, tracesLoggedMax).map(([, trace]) => trace) });
          }
          if (link.socket === ws && ws.readyState === WebSocket.OPEN) {
            const peer = this.peerState();
            for (const { frame } of current) this.sendFrame(link, ws, { t: 'ack', id: frame.id, last: frame.last, peer, ...(frame.lane === undefined ? {} : { lane: frame.lane }) });
          }
        } catch (error) {
          const reason = codeOf(error);
          if (isTesseraError(error, 'ERR_POLICY_REJECTED') && link.socket === ws && ws.readyState === WebSocket.OPEN) {
            // Tell the sender which entries this region may not hold; nothing of the batch was applied.
            const all = current.flatMap((item) => item.frame.entries.map((entry) => ({ entry, frame: item.frame })));
            const indexes = (error as TesseraError & { rejected?: number[] }).rejected ?? [];
            const first = current[0]!.frame;
            link.policyCounts.rejectedHere += indexes.length;
            this.sendFrame(link, ws, { t: 'reject', id: first.id, last: first.last, seqs: indexes.map((i) => all[i]!.entry.seq).filter((seq) => seq > 0), code: reason, ...(first.lane === undefined ? {} : { lane: first.lane }) });
            // A sender on an older policy version gets ours before the link closes.
            this.offerPolicy(link, ws);
            this.drop(link, ws, closeCodes.policy, `policy refused ${indexes.length} entries of batch ${first.id}`);
            continue;
          }
          this.drop(link, ws, closeCodes.protocol, `batch ${current[0]!.frame.id} rejected: ${reason}`);
        }
      }
    } finally {
      link.applying = false;
    }
  }

  /** Feeds one input to a lane's sender and carries out the effects. */
  private step(link: PeerLink, ws: WebSocket, lane: LaneLink, input: SenderInput): void {
    this.run(link, ws, lane, lane.sender.step(input, this.now()));
  }

  /** Carries out a lane's sender effects. */
  private run(link: PeerLink, ws: WebSocket, lane: LaneLink, effects: readonly SenderEffect[]): void {
    for (const effect of effects) {
      if (link.socket !== ws) return;
      switch (effect.kind) {
        case 'read': {
          const head = this.options.replica.lastSeq;
          this.options.replica.deltasSince(effect.after, { limit: effect.limit }).then(
            async ({ entries }) => {
              const denied = await this.judge(link, entries.map((entry) => entry.seq), entries);
              if (link.socket === ws) this.step(link, ws, lane, { kind: 'read', after: effect.after, entries, head, denied });
            },
            (error: Error) => {
              if (isTesseraError(error, 'ERR_LOG_TRUNCATED')) {
                this.log({ event: 'link-catch-up', peer: link.config.node, reason: 'log truncated past the cursor' });
                if (link.socket === ws) this.step(link, ws, lane, { kind: 'truncated', committed: this.options.replica.committedSeq });
                return;
              }
              this.drop(link, ws, closeCodes.protocol, `log read failed: ${codeOf(error)}`);
            },
          );
          break;
        }
        case 'scan':
          this.options.replica.documentsAfter(effect.after, effect.limit).then(
            async ({ entries, next }) => {
              const denied = await this.judge(link, entries.map((entry) => entry.position), entries);
              if (link.socket === ws) this.step(link, ws, lane, { kind: 'scanned', after: effect.after, entries, next, denied });
            },
            (error: Error) => this.drop(link, ws, closeCodes.protocol, `document scan failed: ${codeOf(error)}`),
          );
          break;
        case 'send': {
          const traces: Array<readonly [number, string]> = [];
          for (const entry of effect.entries) {
            count(link.traffic.sent, entry.dataset, entry.delta.length);
            const trace = entry.origin === this.options.replica.node ? this.traces.get(entry.seq) : undefined;
            if (trace !== undefined) traces.push([entry.seq, trace]);
          }
          this.sendFrame(link, ws, {
            t: effect.frame, id: effect.id, last: effect.last, entries: effect.entries, ...(lane.id === 'main' ? {} : { lane: lane.id }),
            ...(effect.frame === 'batch' && traces.length > 0 ? { traces } : {}),
          });
          break;
        }
        case 'persist-cursor':
          this.persistCursor(link, lane, effect.cursor);
          break;
        case 'wake':
          this.timer(link, () => {
            if (link.socket === ws) this.step(link, ws, lane, { kind: 'tick' });
          }, Math.max(0, effect.atMs - this.now()));
          break;
        case 'protocol-error':
          this.drop(link, ws, closeCodes.protocol, effect.reason);
          break;
      }
    }
  }

  /**
   * Which entries the policy keeps from the link's peer (their ids), counted per dataset for the audit. The
   * replica judges; entries the peer's policy refused before are kept back too.
   */
  private async judge<Id extends number | string>(link: PeerLink, ids: readonly Id[], entries: readonly LogEntry[]): Promise<Set<Id>> {
    const { allowed, shadowDenied } = await this.options.replica.sendable(entries, link.config.region);
    link.policyCounts.shadowDenied += shadowDenied;
    const denied = new Set<Id>();
    entries.forEach((entry, i) => {
      if (allowed[i] === true && !(typeof ids[i] === 'number' && link.rejectedSeqs.has(entry.seq))) return;
      denied.add(ids[i]!);
      if (entry.kind === 'purge' || entry.kind === 'state') return;
      link.policyCounts.deniedEntries++;
      link.deniedSinceAudit.set(entry.dataset, (link.deniedSinceAudit.get(entry.dataset) ?? 0) + 1);
    });
    return denied;
  }

  /**
   * Audits the sends the policy denied since the last time, one entry per link: once an interval has passed,
   * or now (`force`, when replication stops). Resolves when the entries are written.
   */
  private auditDenied(nowMs: number, force = false): Promise<unknown> {
    if (!force && nowMs - this.lastDeniedAuditMs < this.deniedAuditIntervalMs) return Promise.resolve();
    this.lastDeniedAuditMs = nowMs;
    const writes: Promise<unknown>[] = [];
    for (const link of this.links.values()) {
      if (link.deniedSinceAudit.size === 0) continue;
      const datasets = Object.fromEntries([...link.deniedSinceAudit].sort(([a], [b]) => (a < b ? -1 : 1)));
      link.deniedSinceAudit.clear();
      writes.push(this.options.replica.recordAudit('send-denied', { peer: link.config.node, region: link.config.region, datasets })
        .catch((error: Error) => this.log({ event: 'audit-error', reason: codeOf(error) })));
    }
    return Promise.all(writes);
  }

  /**
   * Writes a link's cursor durably, coalescing: at most one write in flight per link, always of the latest
   * value. A cursor that lags on disk only means a few duplicates are resent after a crash (skipped there).
   */
  private persistCursor(link: PeerLink, lane: LaneLink, cursor: number): void {
    lane.cursorWanted = Math.max(lane.cursorWanted, cursor);
    if (lane.cursorWriting) return;
    lane.cursorWriting = true;
    const peer = link.config.node;
    const writeLatest = async (): Promise<void> => {
      while (lane.cursorWritten < lane.cursorWanted) {
        const target = lane.cursorWanted;
        await this.options.replica.setCursor(peer, target, lane.id);
        lane.cursorWritten = target;
      }
    };
    lane.cursorChain = writeLatest().catch((error: Error) => {
      link.lastError = `cursor write failed: ${codeOf(error)}`;
    }).finally(() => {
      lane.cursorWriting = false;
    });
  }

  private onReplicaChange(change: ChangeEvent | null): void {
    // One listener serves every waiting session-token read.
    if (change !== null) for (const waiter of this.waiters) if (waiter.dataset === change.dataset && waiter.key === change.key) waiter.check();
    const head = this.options.replica.lastSeq;
    for (const link of this.links.values()) {
      if (link.state !== 'open' || link.socket === null) continue;
      for (const lane of link.lanes.values()) this.step(link, link.socket, lane, { kind: 'appended', head });
    }
  }

  private pingAll(): void {
    const nowMs = this.now();
    void this.auditDenied(nowMs);
    for (const link of this.links.values()) {
      this.sampleRates(link, nowMs);
      const ws = link.socket;
      if (link.state !== 'open' || ws === null) continue;
      if (nowMs - link.lastHeardMs > this.pingIntervalMs * silentIntervalsMax) {
        // Nothing heard for several intervals: a partition TCP cannot see. Reconnecting finds out.
        link.lastError = `no frames from ${link.config.node} for ${nowMs - link.lastHeardMs} ms`;
        ws.terminate();
        continue;
      }
      const sentAts = [...link.lanes.values()].map((lane) => lane.sender.snapshot(nowMs).oldestInflightSentAtMs).filter((ms): ms is number => ms !== null);
      const sentAtMs = sentAts.length === 0 ? null : Math.min(...sentAts);
      if (sentAtMs !== null && nowMs - sentAtMs > this.ackTimeoutMs) {
        link.lastError = `a batch sent ${nowMs - sentAtMs} ms ago is still unacknowledged`;
        this.log({ event: 'link-error', peer: link.config.node, reason: 'ack timeout' });
        ws.terminate();
        continue;
      }
      this.sendFrame(link, ws, { t: 'ping', ms: nowMs, peer: this.peerState() });
    }
  }

  private sampleRates(link: PeerLink, nowMs: number): void {
    const sample = { atMs: nowMs, sentEntries: link.stats().entries, sentBytes: link.wireBytesSent, receivedEntries: link.received.entries, receivedBytes: link.received.wireBytes };
    const last = link.rateSample;
    if (last !== null && nowMs > last.atMs) {
      const perSecond = (now: number, then: number) => Math.round(((now - then) * 1000) / (nowMs - last.atMs));
      link.rates = {
        sentEntriesPerSecond: perSecond(sample.sentEntries, last.sentEntries),
        sentBytesPerSecond: perSecond(sample.sentBytes, last.sentBytes),
        receivedEntriesPerSecond: perSecond(sample.receivedEntries, last.receivedEntries),
        receivedBytesPerSecond: perSecond(sample.receivedBytes, last.receivedBytes),
      };
    }
    link.rateSample = sample;
  }

  /** This node's report to its peers: what it holds per origin, and which links it has down. */
  private peerState(): PeerState {
    const down = [...this.links.values()].filter((link) => link.state !== 'open').map((link) => link.config.node);
    return { have: this.options.replica.frontier(), down };
  }

  private sendFrame(link: PeerLink, ws: WebSocket, frame: Frame): void {
    if (ws.readyState !== WebSocket.OPEN) return;
    const bytes = encodeFrame(frame);
    link.wireBytesSent += bytes.length;
    ws.send(bytes);
  }

  private timer(link: PeerLink, fn: () => void, delayMs: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      link.timers.delete(timer);
      fn();
    }, delayMs);
    link.timers.add(timer);
    return timer;
  }
}

/** Adds one entry to per-dataset traffic counters (bounded: past the limit, datasets count as `(other)`). */
function count(counters: Map<string, { entries: number; bytes: number }>, dataset: string, bytes: number): void {
  let counter = counters.get(dataset);
  if (counter === undefined) {
    const name = counters.size < trafficDatasetsMax ? dataset : '(other)';
    counter = counters.get(name) ?? { entries: 0, bytes: 0 };
    counters.set(name, counter);
  }
  counter.entries++;
  counter.bytes += bytes;
}

function toBytes(data: RawData): Uint8Array {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return new Uint8Array(data);
}


function cadenceName(fixedCadenceMs: number | undefined): string {
  return fixedCadenceMs === undefined ? 'adaptive' : `fixed ${fixedCadenceMs} ms`;
}

/**
 * What a log line or a status field may say about an error: its stable code (or class), never its message —
 * messages of store and frame errors can quote a document's dataset and key, which must not reach logs.
 */
function codeOf(error: unknown): string {
  return isTesseraError(error) ? error.code : error instanceof Error ? error.name : 'unknown error';
}
