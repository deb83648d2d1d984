/**
 * The node's periodic chores over all its links: log retention and handovers, and the audit of sends the
 * policy denied. Retention truncates entries every peer acknowledged and, past `logEntriesMax`, the oldest
 * even if a peer has not (that peer is caught up from document states; purge notices it has not
 * acknowledged move to the head of the log instead of going); handed-over copies are purged once every node
 * of the regions they went to acknowledged them.
 */
import { type SyncDriver } from './driver.js';
import { codeOf } from './codes.js';
import { type LinkRun } from './link-run.js';

/** The cursors of a link's lanes, as stored (main lane by peer, others by `peer/lane`). */
function laneCursors(link: LinkRun, cursors: Readonly<Record<string, number>>): number[] {
  const peer = link.machine.config.peer.node;
  return [...link.machine.lanes.keys()].map((lane) => cursors[lane === 'main' ? peer : `${peer}/${lane}`] ?? 0);
}

/** Retention and the denied-sends audit of one node. */
export class Retention {
  private stopTimers: Array<() => void> = [];
  private lastDeniedAuditMs = 0;
  private stopped = false;

  constructor(private readonly driver: SyncDriver) {}

  /** Arms the periodic timers. */
  start(): void {
    const { host, options } = this.driver;
    this.lastDeniedAuditMs = host.now();
    const every = (intervalMs: number, label: string, run: () => Promise<unknown>) => {
      const arm = () => {
        if (this.stopped) return;
        // The work runs as host I/O, so that a simulation orders it with everything else.
        const cancel = host.timer(intervalMs, label, () =>
          host.io(label, run, (outcome) => {
            if (!outcome.ok) host.log({ event: `${label}-error`, reason: codeOf(outcome.error) });
            arm();
          }),
        );
        this.stopTimers.push(cancel);
      };
      arm();
    };
    every(options.retentionIntervalMs, 'retention', () => this.retain());
    every(options.deniedAuditIntervalMs, 'denied-audit', () => this.auditDenied(false));
  }

  /** Cancels the timers. */
  stop(): void {
    this.stopped = true;
    for (const cancel of this.stopTimers) cancel();
    this.stopTimers = [];
  }

  /** Truncates the log and settles handovers; returns the log floor. */
  async retain(): Promise<number> {
    const { host, options, links } = this.driver;
    const replica = host.replica;
    const cursors = await replica.cursors();
    const all = [...links.values()];
    const acknowledgedByAll = Math.min(...all.flatMap((link) => laneCursors(link, cursors)));
    // Per region, the lowest sequence number every node of it acknowledged (0 for a region without links).
    const acknowledgedIn = (region: string): number => {
      const inRegion = all.filter((link) => link.machine.config.peer.region === region);
      return inRegion.length === 0 ? 0 : Math.min(...inRegion.flatMap((link) => laneCursors(link, cursors)));
    };
    const handedOver = await replica.settleHandovers(acknowledgedIn);
    if (handedOver > 0) host.log({ event: 'handover-purged', documents: handedOver });
    const sizeBound = replica.committedSeq - options.logEntriesMax;
    const upto = Math.max(Number.isFinite(acknowledgedByAll) ? acknowledgedByAll : replica.committedSeq, sizeBound);
    if (upto <= replica.logFloor) return replica.logFloor;
    const floor = await replica.truncateLog(upto, acknowledgedIn);
    host.log({ event: 'log-truncated', floor, bySizeBound: sizeBound > acknowledgedByAll });
    return floor;
  }

  /**
   * Audits the sends the policy denied since the last time, one entry per link: once an interval has passed,
   * or now (`force`, when replication stops). Resolves when the entries are written.
   */
  async auditDenied(force: boolean): Promise<void> {
    const { host, options, links } = this.driver;
    const nowMs = host.now();
    if (!force && nowMs - this.lastDeniedAuditMs < options.deniedAuditIntervalMs) return;
    this.lastDeniedAuditMs = nowMs;
    for (const link of links.values()) {
      if (link.deniedSinceAudit.size === 0) continue;
      const datasets = Object.fromEntries([...link.deniedSinceAudit].sort(([a], [b]) => (a < b ? -1 : 1)));
      link.deniedSinceAudit.clear();
      const peer = link.machine.config.peer;
      await host.replica
        .recordAudit('send-denied', { peer: peer.node, region: peer.region, datasets })
        .catch((error: unknown) => host.log({ event: 'audit-error', reason: codeOf(error) }));
    }
  }
}
