/**
 * A simulated node: a real `Replica` on the node's simulated disk (storage.ts) and the real sync driver
 * (@tessera/sync's SyncDriver, the one the daemon runs) over the simulated network and clock. Every storage
 * step the driver asks for is an event of the simulation, run to completion before the next, so a seed
 * replays the same run. What the node adds is the process around them: start, crash (kill -9: the disk keeps
 * what was written, nothing in flight completes), crashes armed to strike at the k-th write of an operation
 * or right after an operation became durable but before its acknowledgement left the process.
 */
import { type Policy, assert } from '@tessera/core';
import { type ChangeEvent, type LogEntry, type PurgeEvent, Replica } from '@tessera/store';
import { type LinkTiming, type SyncHost, SyncDriver, lanesOfPolicy } from '@tessera/sync';
import { type SimConn, type SimNetwork } from './network.js';
import { type Random } from './random.js';
import { type DiskHandle, SimDisk } from './storage.js';
import { SimTransport, simUrl } from './transport.js';

/** Timing of the links and the node's chores. */
export interface SimTiming extends LinkTiming {
  readonly retentionIntervalMs: number;
  readonly logEntriesMax: number;
  readonly deniedAuditIntervalMs: number;
}

/** What a node needs from the simulation. */
export interface NodeHost {
  readonly nowMs: number;
  at(atMs: number, label: string, run: () => void | Promise<void>): void;
  readonly network: SimNetwork;
  readonly cluster: string;
  readonly secret: Uint8Array;
  readonly timing: SimTiming;
  /** The node's wall clock (skewed, may jump): the replica's HLC reads it. */
  wallMs(node: string): number;
  /** The clock given to the link machinery. */
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
  /** The node dropped its copy of a document (`reason` as `PurgeEvent`'s). */
  purged(node: SimNode, purge: PurgeEvent): void;
  /** The node installed a policy version a peer sent. */
  policyInstalled(node: SimNode, version: number, from: string): void;
  /** Something the node did that a trace should show. */
  trace(text: string): void;
}

/** One simulated node. */
export class SimNode {
  replica: Replica | null = null;
  driver: SyncDriver | null = null;
  /** 0 before the first start; bumped by every start. */
  incarnation = 0;
  readonly disk: SimDisk;
  private handle: DiskHandle | null = null;
  private transport: SimTransport | null = null;
  /** An armed crash: strike at this storage write of the next operation that writes (0 = the first). */
  private crashArm: { atWrite: number } | null = null;
  private writesInOp = 0;
  private crashStruck: (() => void) | null = null;
  readonly stats = { crashes: 0, midOpCrashes: 0, restarts: 0 };
  private readonly onChange = (change: ChangeEvent) => this.host.observer.changed(this, change.dataset, change.key);
  private readonly onPurged = (purge: PurgeEvent) => this.host.observer.purged(this, purge);

  constructor(
    readonly id: string,
    readonly region: string,
    private readonly peers: ReadonlyArray<{ node: string; region: string }>,
    private readonly host: NodeHost,
    private readonly random: Random,
  ) {
    this.disk = new SimDisk(id);
  }

  get alive(): boolean {
    return this.replica !== null;
  }

  // ---------------------------------------------------------------- lifecycle

  /** Opens the replica (recovering what is on disk) and starts replication. */
  async start(): Promise<void> {
    assert(this.replica === null, `node ${this.id} starts once`);
    const incarnation = ++this.incarnation;
    if (incarnation > 1) this.stats.restarts++;
    const handle = this.disk.handle(() => this.onWrite(handle));
    this.handle = handle;
    const replica = await Replica.open({
      storage: handle,
      node: this.id,
      region: this.region,
      durability: 'os',
      peers: this.peers,
      wallClock: () => this.host.wallMs(this.id),
      policy: this.host.configPolicy(),
    });
    this.replica = replica;
    this.transport = new SimTransport(this.host.network, this.id, incarnation, (peer, entries) => this.host.observer.sent(this, peer, entries));
    const timing = this.host.timing;
    this.driver = new SyncDriver(this.syncHost(replica, incarnation, this.transport), {
      cluster: this.host.cluster,
      secret: this.host.secret,
      peers: this.peers.map((peer) => ({ ...peer, url: simUrl(peer.node) })),
      timing,
      lanes: lanesOfPolicy(replica.policy),
      retentionIntervalMs: timing.retentionIntervalMs,
      logEntriesMax: timing.logEntriesMax,
      deniedAuditIntervalMs: timing.deniedAuditIntervalMs,
      onPolicy: ({ version, from }) => this.host.observer.policyInstalled(this, version, from),
    });
    replica.on('change', this.onChange);
    replica.on('purged', this.onPurged);
    this.driver.start();
  }

  /** The host port of one incarnation: its clocks, randomness, storage steps as events, timers, transport. */
  private syncHost(replica: Replica, incarnation: number, transport: SimTransport): SyncHost {
    const live = () => this.incarnation === incarnation && this.replica === replica;
    return {
      replica,
      transport,
      now: () => this.host.linkMs(this.id),
      wallNow: () => this.host.wallMs(this.id),
      random: () => this.random.next(),
      randomBytes: (length) => this.random.bytes(length),
      io: (label, work, done) => {
        this.host.at(this.host.nowMs + this.host.diskDelayMs(), `${this.id}:${label}`, async () => {
          if (!live()) return;
          await this.operate(
            () =>
              work().then(
                (value) => ({ ok: true as const, value }),
                (error: unknown) => ({ ok: false as const, error }),
              ),
            (outcome) => {
              if (live()) done(outcome);
            },
          );
        });
      },
      timer: (delayMs, label, fn) => {
        let cancelled = false;
        this.host.at(this.host.nowMs + Math.max(0, Math.ceil(delayMs)), `${this.id}:${label}`, () => {
          if (!cancelled && live()) fn();
        });
        return () => {
          cancelled = true;
        };
      },
      log: (event) => {
        if (event.event === 'link-open' || event.event === 'link-error' || event.event === 'policy-installed' || event.event === 'log-truncated') {
          this.host.observer.trace(`${this.id}: ${JSON.stringify(event)}`);
        }
      },
    };
  }

  /** The network delivered a new connection to this node. */
  accept(simConn: SimConn): void {
    if (this.driver === null || this.transport === null) return;
    const { conn, events } = this.driver.accept();
    this.transport.accept(conn, simConn, events);
  }

  /** Kills the process: sockets vanish, in-flight work is abandoned, the disk keeps what was written. */
  async crash(): Promise<void> {
    const replica = this.replica;
    if (replica === null) return;
    this.host.observer.trace(`${this.id}: crash`);
    this.stats.crashes++;
    this.handle?.kill();
    this.replica = null;
    this.driver = null;
    this.transport = null;
    this.crashArm = null;
    this.crashStruck = null;
    replica.off('change', this.onChange);
    replica.off('purged', this.onPurged);
    this.host.network.crashed(this.id, this.incarnation);
    await replica.abandon();
  }

  /** Stops the node cleanly (end of a run) and releases its disk. */
  async stop(): Promise<void> {
    const replica = this.replica;
    if (replica !== null) {
      this.replica = null;
      this.host.network.crashed(this.id, this.incarnation);
      // Not awaited: the run's events have stopped, so a cursor write the driver would wait for never runs.
      void this.driver?.close().catch(() => undefined);
      this.driver = null;
      await replica.close().catch(() => undefined);
    }
    await this.disk.dispose();
  }

  /** Arms a crash at the `atWrite`-th storage write of the next operation that writes. */
  armCrash(atWrite: number): void {
    if (this.replica !== null) this.crashArm = { atWrite };
  }

  /** Disarms a crash not yet struck. */
  disarm(): void {
    this.crashArm = null;
  }

  private onWrite(handle: DiskHandle): 'write' | 'strike' {
    if (handle !== this.handle || this.crashArm === null || this.crashStruck === null) return 'write';
    if (this.writesInOp >= this.crashArm.atWrite) {
      const struck = this.crashStruck;
      this.crashStruck = null;
      struck();
      return 'strike';
    }
    this.writesInOp++;
    return 'write';
  }

  /**
   * Runs one operation of this node as an event's work. If an armed crash strikes inside it, the operation is
   * abandoned at that write and the node crashes; if the operation wrote and completed, an armed crash strikes
   * before `effects` (its acknowledgement, or its answer to the driver) runs.
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
    if (outcome === 'crashed' || (this.crashArm !== null && this.writesInOp > 0)) {
      this.stats.midOpCrashes++;
      await this.crash();
      return 'crashed';
    }
    if (this.replica !== replica) return 'down';
    await effects(outcome.result);
    return 'done';
  }

  /** Per link: state, lanes' cursors and backlog (for quiescence and reports). */
  linkViews(): Array<{
    peer: string;
    state: string;
    lanes: Array<{ id: string; cursor: number; head: number; inflight: number; catchingUp: boolean }>;
    applying: boolean;
  }> {
    const driver = this.driver;
    if (driver === null) return [];
    const nowMs = this.host.linkMs(this.id);
    return [...driver.links.values()].map((link) => ({
      peer: link.machine.config.peer.node,
      state: link.machine.state,
      applying: link.machine.applying,
      lanes: [...link.machine.lanes.values()].map((sender) => {
        const view = sender.snapshot(nowMs);
        return { id: sender.lane.id, cursor: view.cursor, head: view.head, inflight: view.inflightBatches, catchingUp: sender.catchingUp };
      }),
    }));
  }
}
