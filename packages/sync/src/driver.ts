/**
 * The one driver of a node's replication: it owns a link machine per peer (link/machine.ts), feeds them
 * transport events, replica answers and time, and carries out their effects through the host port (host.ts).
 * The daemon (ws.ts) and the simulation run this same driver; nothing of the link logic exists elsewhere.
 *
 * Besides the links it does the node-wide chores: the acceptor's first handshake step (before a hello names
 * the link), installing a policy a peer sent, log retention and handovers (retention.ts), the audit of denied
 * sends, the peer state acks and pings carry (for forwarding), and session-token waits.
 */
import { type Dot, TesseraError, isTesseraError, parsePolicy } from '@tessera/core';
import { type ChangeEvent, type LogEntry, policyHash } from '@tessera/store';
import { type RateLimits } from './cadence.js';
import { type IoOutcome, type ConnEvents, type SyncHost } from './host.js';
import { LinkMachine } from './link/machine.js';
import { type ConnId, type LinkEffect, type LinkInput, type LinkTiming, type LocalPolicy, type PeerConfig, closeCodes } from './link/types.js';
import { type LaneConfig, buildLanes } from './links.js';
import { LinkRun } from './link-run.js';
import { type Frame, type PeerState, decodeFrame, encodeFrame, nonceBytes } from './protocol.js';
import { Retention } from './retention.js';
import { Acceptor } from './acceptor.js';
import { type CertifiedPeer } from './link/handshake.js';
import { codeOf } from './codes.js';

/** Options of a node's replication. */
export interface DriverOptions {
  readonly cluster: string;
  readonly secret: Uint8Array;
  readonly peers: readonly PeerConfig[];
  readonly limits?: RateLimits;
  /** Forward a third node's changes to a peer that lacks them and reports its link to that node down (default true). */
  readonly forward?: boolean;
  readonly timing: LinkTiming;
  readonly lanes?: readonly LaneConfig[];
  /** Flush every this many ms instead of adaptively (links staggered, ±10% jitter). */
  readonly fixedCadenceMs?: number;
  /** How often the log is truncated and handovers settled. */
  readonly retentionIntervalMs: number;
  /** The log's size bound in entries; past it, lagging peers are caught up from document states. */
  readonly logEntriesMax: number;
  /** How often the sends the policy denied are audited, one entry per link. */
  readonly deniedAuditIntervalMs: number;
  /** Called after a newer policy version received from a peer was installed. */
  readonly onPolicy?: (event: { version: number; from: string }) => void;
  /** Refuse a dialer whose wall clock is further than this from ours (acceptor.ts); absent: no check. */
  readonly clockOffsetMsMax?: number;
}

/** Trace ids of recent local writes kept for their batches (oldest forgotten first). */
export const tracesMax = 10_000;
/** Trace ids named in one `batch-applied` log event. */
export const tracesLoggedMax = 16;
/** Session-token reads waiting at once; more answer "not yet" at once. */
export const waitersMax = 10_000;

/** A received batch made durable, as `onApplied` listeners see it. */
export interface AppliedEvent {
  readonly peer: string;
  readonly region: string;
  readonly entries: ReadonlyArray<{ readonly dataset: string; readonly hlcMs: number }>;
}

/** A node's replication with its peers. */
export class SyncDriver {
  readonly links = new Map<string, LinkRun>();
  /** The link of each connection a hello (or a dial) has named. */
  readonly byConn = new Map<ConnId, LinkRun>();
  private readonly acceptor: Acceptor;
  private connNext = 1;
  private closed = false;
  private readonly retention: Retention;
  private readonly waiters = new Set<{ readonly dataset: string; readonly key: string; check(): void }>();
  private readonly traces = new Map<number, string>();
  private readonly appliedListeners = new Set<(event: AppliedEvent) => void>();
  private readonly onChange = (change: ChangeEvent) => this.onReplicaChange(change);
  private readonly onAppended = () => this.onReplicaChange(null);
  /** The enforced policy changed (any way: the API, a peer, the config): in the same turn, links re-judge. */
  private readonly onPolicyEvent = () => this.policyChanged();
  /** A document's placement facts changed: nothing judged under the old ones leaves. */
  private readonly onFactsEvent = () => {
    for (const link of this.links.values()) this.step(link, { kind: 'facts-changed' });
  };

  constructor(
    readonly host: SyncHost,
    readonly options: DriverOptions,
  ) {
    const replica = host.replica;
    const self = { cluster: options.cluster, node: replica.node, region: replica.region, secret: options.secret };
    const lanes = buildLanes(options.lanes ?? [], options.fixedCadenceMs);
    for (const peer of options.peers) {
      if (peer.node === replica.node) continue;
      const machine = new LinkMachine(
        {
          self,
          peer,
          role: replica.node < peer.node ? 'dial' : 'accept',
          timing: options.timing,
          limits: options.limits ?? { bytesPerSecondMax: null, entriesPerSecondMax: null },
          forward: options.forward ?? true,
          lanes: lanes.map(({ spec, fixedCadenceMs }) => ({
            spec,
            fixed: fixedCadenceMs === undefined ? null : { intervalMs: fixedCadenceMs, offsetFraction: host.random(), jitter: () => host.random() },
          })),
        },
        this.localPolicy(),
        host.now(),
        () => this.connNext++,
      );
      this.links.set(peer.node, new LinkRun(machine));
    }
    this.retention = new Retention(this);
    this.acceptor = new Acceptor(
      this,
      (conn, bytes) => this.onMessage(conn, bytes),
      (conn, code, reason) => this.onConnClosed(conn, code, reason),
    );
  }

  /** This node's enforced policy, as links offer it. */
  localPolicy(): LocalPolicy {
    const policy = this.host.replica.policy;
    return { stamp: this.host.replica.policyStamp(), text: policy?.text ?? null, signature: this.host.replica.policySignature };
  }

  /** Starts the links (dialers dial), retention and the audit of denied sends. */
  start(): void {
    this.host.replica.on('change', this.onChange);
    this.host.replica.on('appended', this.onAppended);
    this.host.replica.on('policy', this.onPolicyEvent);
    this.host.replica.on('facts', this.onFactsEvent);
    this.retention.start();
    for (const link of this.links.values()) this.step(link, { kind: 'start' });
  }

  /** Feeds one input to a link's machine and carries out the effects. */
  step(link: LinkRun, input: LinkInput): void {
    if (this.closed && input.kind !== 'closed' && input.kind !== 'shutdown') return;
    this.run(link, link.machine.step(input, this.host.now(), this.host.wallNow()));
  }

  // ---------------------------------------------------------------- incoming connections

  /**
   * A new incoming connection: the acceptor challenges, and the first hello names the link (acceptor.ts).
   * `certified`: the identity the transport authenticated (the peer's TLS certificate), which the hello must claim.
   */
  accept(certified: CertifiedPeer | null = null): { conn: ConnId; events: ConnEvents } {
    const conn = this.connNext++;
    return { conn, events: this.acceptor.accept(conn, certified) };
  }

  // ---------------------------------------------------------------- transport events

  private onMessage(conn: ConnId, bytes: Uint8Array): void {
    const link = this.byConn.get(conn);
    if (link === undefined) return;
    let frame: Frame;
    try {
      frame = decodeFrame(bytes);
    } catch (error) {
      // A frame that does not decode closes the link, the reason logged by code (never the frame's content).
      const reason = `malformed frame: ${codeOf(error)}`;
      link.machine.lastError = reason;
      this.host.log({ event: 'link-error', peer: link.machine.config.peer.node, code: closeCodes.protocol, reason });
      this.host.transport.close(conn, closeCodes.protocol, reason);
      return;
    }
    this.step(link, { kind: 'frame', conn, frame, wireBytes: bytes.length });
  }

  private onConnClosed(conn: ConnId, code: number, reason: string): void {
    const link = this.byConn.get(conn);
    if (link === undefined) return;
    this.byConn.delete(conn);
    this.step(link, { kind: 'closed', conn, code, reason, random: this.host.random() });
  }

  // ---------------------------------------------------------------- effects

  private run(link: LinkRun, effects: readonly LinkEffect[]): void {
    for (const effect of effects) this.carry(link, effect);
  }

  private carry(link: LinkRun, effect: LinkEffect): void {
    const replica = this.host.replica;
    const peer = link.machine.config.peer;
    switch (effect.kind) {
      case 'dial': {
        const conn = effect.conn;
        this.byConn.set(conn, link);
        this.host.transport.dial(conn, peer.url, {
          open: () => this.step(link, { kind: 'connected', conn, nonce: this.host.randomBytes(nonceBytes) }),
          message: (bytes) => this.onMessage(conn, bytes),
          close: (code, reason) => this.onConnClosed(conn, code, reason),
        });
        return;
      }
      case 'send':
        this.send(link, effect.conn, effect.frame, effect.peerState === true);
        return;
      case 'close':
        this.host.transport.close(effect.conn, effect.code, effect.reason);
        return;
      case 'load-cursor':
        this.io(
          link,
          effect.conn,
          'cursor read',
          async () => ({
            cursor: await replica.cursor(peer.node, effect.lane),
            head: replica.lastSeq,
            floor: replica.logFloor,
            committed: replica.committedSeq,
          }),
          (value) => ({ kind: 'cursor', conn: effect.conn, lane: effect.lane, ...value }),
        );
        return;
      case 'read':
        this.read(link, effect.conn, effect.lane, effect.after, effect.limit, effect.epoch);
        return;
      case 'scan':
        this.io(
          link,
          effect.conn,
          'document scan',
          async () => {
            const { entries, next } = await replica.documentsAfter(effect.after, effect.limit);
            const denied = await this.judge(
              link,
              entries.map((entry) => entry.position),
              entries,
            );
            return { entries, next, denied: denied.ids, heads: denied.heads };
          },
          (value) => ({ kind: 'scanned', conn: effect.conn, lane: effect.lane, after: effect.after, epoch: effect.epoch, ...value }),
        );
        return;
      case 'apply':
        this.apply(link, effect.conn, effect.entries, effect.traces);
        return;
      case 'persist-cursor':
        link.persistCursor(this.host, peer.node, effect.lane, effect.cursor);
        return;
      case 'install-policy':
        this.install(link, effect.version, effect.text, effect.signature);
        return;
      case 'wake':
        if (link.armWake(effect.atMs)) {
          this.host.timer(Math.max(0, effect.atMs - this.host.now()), `wake-${peer.node}`, () => {
            link.firedWake(effect.atMs);
            this.step(link, { kind: 'tick' });
          });
        }
        return;
      case 'reoffer-refused':
        link.policyOfferedAtSeq = this.host.replica.lastSeq;
        this.host.io(
          `reoffer-${peer.node}`,
          () => this.host.replica.reofferRefused(peer.region),
          (outcome) => {
            if (!outcome.ok) this.host.log({ event: 'reoffer-failed', peer: peer.node, reason: codeOf(outcome.error) });
            else if (outcome.value > 0) this.host.log({ event: 'refused-reoffered', peer: peer.node, documents: outcome.value });
          },
        );
        return;
      case 'refused-by-peer':
        this.host.log({ event: 'policy-rejected-by-peer', peer: peer.node, entries: effect.seqs.length });
        // Recorded by the next cursor write, before the cursor passes them (link-run.ts).
        link.refusedPending.push(...effect.seqs);
        if (link.policyOfferedAtSeq !== null && effect.seqs.some((seq) => seq <= link.policyOfferedAtSeq!)) link.reofferPending = true;
        return;
      case 'log':
        this.host.log(effect.event);
        return;
    }
  }

  private send(link: LinkRun, conn: ConnId, frame: Frame, peerState: boolean): void {
    let out = frame;
    if (peerState && (frame.t === 'ack' || frame.t === 'ping')) out = { ...frame, peer: this.peerState() };
    if (frame.t === 'batch' || frame.t === 'state') {
      const traces: Array<readonly [number, string]> = [];
      for (const entry of frame.entries) {
        link.count('sent', entry.dataset, entry.delta.length);
        const trace = entry.origin === this.host.replica.node ? this.traces.get(entry.seq) : undefined;
        if (trace !== undefined) traces.push([entry.seq, trace]);
      }
      if (frame.t === 'batch' && traces.length > 0) out = { ...frame, traces };
    }
    const bytes = encodeFrame(out);
    link.wireBytesSent += bytes.length;
    this.host.transport.send(conn, bytes);
  }

  /** Runs storage work for a connection; its answer reaches the machine as the input `then` builds. */
  private io<T>(link: LinkRun, conn: ConnId, what: string, work: () => Promise<T>, then: (value: T) => LinkInput): void {
    this.host.io(`${what}-${link.machine.config.peer.node}`, work, (outcome: IoOutcome<T>) => {
      if (outcome.ok) this.step(link, then(outcome.value));
      else this.step(link, { kind: 'failed', conn, what, code: codeOf(outcome.error) });
    });
  }

  private read(link: LinkRun, conn: ConnId, lane: string, after: number, limit: number, epoch: number): void {
    const replica = this.host.replica;
    const head = replica.lastSeq;
    // Everything up to here is durable before the read begins: a read that reaches the end of the log saw all of it.
    const committed = replica.committedSeq;
    this.host.io(
      `read-${link.machine.config.peer.node}`,
      async () => {
        const { entries } = await replica.deltasSince(after, { limit });
        const judged = await this.judge(
          link,
          entries.map((entry) => entry.seq),
          entries,
        );
        return { entries, judged };
      },
      (outcome) => {
        if (outcome.ok) {
          const { entries, judged } = outcome.value;
          const through = entries.length < limit ? committed : undefined;
          this.step(link, { kind: 'read', conn, lane, after, entries, head, denied: judged.ids, heads: judged.heads, epoch, through });
        } else if (isTesseraError(outcome.error, 'ERR_LOG_TRUNCATED')) {
          this.step(link, { kind: 'truncated', conn, lane, committed: replica.committedSeq, floor: replica.logFloor, epoch });
        } else {
          this.step(link, { kind: 'failed', conn, what: 'log read', code: codeOf(outcome.error) });
        }
      },
    );
  }

  /** Which entries the policy keeps from the link's peer (their ids), and the heads of those that may go. */
  private async judge<Id extends number | string>(
    link: LinkRun,
    ids: readonly Id[],
    entries: readonly LogEntry[],
  ): Promise<{ ids: Set<Id>; heads: ReadonlyMap<string, Uint8Array> }> {
    const { allowed, shadowDenied, heads } = await this.host.replica.sendable(entries, link.machine.config.peer.region);
    link.policyCounts.shadowDenied += shadowDenied;
    const denied = new Set<Id>();
    entries.forEach((entry, i) => {
      if (allowed[i] === true) return;
      denied.add(ids[i]!);
      if (entry.kind === undefined) link.denied(entry.dataset);
    });
    return { ids: denied, heads };
  }

  private apply(link: LinkRun, conn: ConnId, entries: readonly LogEntry[], traces: readonly string[]): void {
    const peer = link.machine.config.peer;
    this.host.io(
      `apply-${peer.node}`,
      () => this.host.replica.applyDeltas(entries, { from: peer.region }),
      (outcome) => {
        if (!outcome.ok) {
          this.step(link, { kind: 'failed', conn, what: 'apply', code: codeOf(outcome.error) });
          return;
        }
        for (const entry of entries) link.count('received', entry.dataset, entry.delta.length);
        if (this.appliedListeners.size > 0) {
          const event: AppliedEvent = {
            peer: peer.node,
            region: peer.region,
            entries: entries.map((entry) => ({ dataset: entry.dataset, hlcMs: entry.hlc.ms })),
          };
          for (const listener of this.appliedListeners) listener(event);
        }
        if (traces.length > 0) {
          // A write can be followed from its origin to every region by its trace id.
          this.host.log({
            event: 'batch-applied',
            peer: peer.node,
            entries: entries.length,
            applied: outcome.value.applied,
            traceIds: traces.slice(0, tracesLoggedMax),
          });
        }
        this.step(link, { kind: 'applied', conn, refused: outcome.value.refused, applied: outcome.value.applied });
      },
    );
  }

  /** Installs a newer policy version a peer sent, then tells every link (they offer it to older peers). */
  private install(from: LinkRun, version: number, text: string, signature: string | null): void {
    const replica = this.host.replica;
    const peer = from.machine.config.peer.node;
    this.host.io(
      `policy-from-${peer}`,
      async () => {
        if (version <= (replica.policy?.version ?? 0)) return null;
        const policy = parsePolicy(text, `policy v${version} from ${peer}`);
        if (policy.version !== version) throw new TesseraError('ERR_POLICY_INVALID', `the frame says version ${version}, the text ${policy.version}`);
        return (await replica.installPolicy(policy, 'enforce', `peer:${peer}`, signature ?? undefined)) === null ? null : policy;
      },
      (outcome) => {
        if (!outcome.ok && !(isTesseraError(outcome.error, 'ERR_POLICY_CONFLICT') && version <= (replica.policy?.version ?? 0))) {
          this.host.log({ event: 'policy-refused', version, from: peer, reason: codeOf(outcome.error) });
        }
        this.step(from, { kind: 'installed', policy: this.localPolicy() });
        if (outcome.ok && outcome.value !== null) {
          this.host.log({ event: 'policy-installed', version, from: peer });
          this.options.onPolicy?.({ version, from: peer });
          this.policyChanged();
        }
      },
    );
  }

  /** After the enforced policy changed (from a peer or the API): offer it to every peer on an older version. */
  policyChanged(): void {
    const policy = this.localPolicy();
    for (const link of this.links.values()) this.step(link, { kind: 'policy-changed', policy });
  }

  private onReplicaChange(change: ChangeEvent | null): void {
    // One listener serves every waiting session-token read.
    if (change !== null) for (const waiter of this.waiters) if (waiter.dataset === change.dataset && waiter.key === change.key) waiter.check();
    const head = this.host.replica.lastSeq;
    for (const link of this.links.values()) this.step(link, { kind: 'appended', head });
  }

  /** This node's report to its peers: per origin what it received from it in order, and its links down. */
  peerState(): PeerState {
    const have: Record<string, number> = {};
    const down: string[] = [];
    for (const [node, link] of this.links) {
      have[node] = link.machine.delivered;
      if (link.machine.state !== 'open') down.push(node);
    }
    return { have, down };
  }

  // ---------------------------------------------------------------- for the daemon and tests

  /** Remembers the trace id of a local write, so that the batches carrying it name it. Bounded. */
  noteTrace(seq: number, traceId: string): void {
    if (this.traces.size >= tracesMax) this.traces.delete(this.traces.keys().next().value!);
    this.traces.set(seq, traceId);
  }

  /** The trace ids of entries in a received batch, for the `batch-applied` log line. */
  onApplied(listener: (event: AppliedEvent) => void): () => void {
    this.appliedListeners.add(listener);
    return () => this.appliedListeners.delete(listener);
  }

  /** Resolves true once this node's copy of (dataset, key) holds `dot`, false at `deadlineMs` (wall clock). */
  async waitFor(dataset: string, key: string, dot: Dot, deadlineMs: number): Promise<boolean> {
    const holds = async () => (await this.host.replica.state(dataset, key))?.ctx.has(dot) ?? false;
    if (await holds()) return true;
    if (this.waiters.size >= waitersMax) return false;
    return new Promise<boolean>((resolve) => {
      const waiter = {
        dataset,
        key,
        check: () =>
          void holds().then(
            (yes) => yes && finish(true),
            () => finish(false),
          ),
      };
      const finish = (result: boolean) => {
        if (!this.waiters.delete(waiter)) return;
        cancel();
        resolve(result);
      };
      const cancel = this.host.timer(Math.max(0, deadlineMs - this.host.wallNow()), 'token-wait', () => void holds().then(finish, () => finish(false)));
      this.waiters.add(waiter);
    });
  }

  /** Truncates the log and settles handovers now (retention.ts); returns the log floor. */
  retain(): Promise<number> {
    return this.retention.retain();
  }

  /** Audits denied sends now (one entry per link); resolves when written. */
  auditDenied(force = false): Promise<unknown> {
    return this.retention.auditDenied(force);
  }

  /** True once `close` began. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Stops: links close, timers stop, denied sends are audited. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.host.replica.off('change', this.onChange);
    this.host.replica.off('appended', this.onAppended);
    this.host.replica.off('policy', this.onPolicyEvent);
    this.host.replica.off('facts', this.onFactsEvent);
    this.retention.stop();
    for (const link of this.links.values()) this.step(link, { kind: 'shutdown' });
    this.closed = true;
    this.acceptor.refuseAll('shutdown', 'node shutting down');
    await Promise.all([...this.links.values()].map((link) => link.cursorsWritten()));
    await this.retention.auditDenied(true).catch(() => undefined);
  }
}

export { codeOf } from './codes.js';
export { policyHash };
