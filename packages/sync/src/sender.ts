/**
 * The sending side of one link, as a state machine: inputs and a clock in, effects out; the caller does the
 * I/O (reads the log, sends frames, persists the cursor, arms a timer). It runs the same under real sockets
 * and under a simulated network.
 *
 * It streams delta-log entries after the peer's cursor, keeps at most `windowBatches` batches unacknowledged
 * (backpressure), and advances the cursor only on acknowledgements — which the peer sends once the batch is
 * durable. Entries that originated at the peer itself are not sent back (the batch still advances past them).
 */
import { assert, assertNever } from '@tessera/core';
import { type LogEntry, docKey } from '@tessera/store';
import { CadenceController, type RateGate, type RateLimits, coalesceEntriesMin, coalesceMs, inflightBytesMax } from './cadence.js';
import { Forwarding } from './forwarding.js';
import {
  type FixedCadence,
  type InFlight,
  type LaneSpec,
  type SenderEffect,
  type SenderInput,
  type SenderStats,
  catchUpScanEntriesMax,
  laneCarries,
  mainLane,
} from './sender-types.js';

export * from './sender-types.js';
import { batchBytesMax, batchEntriesMax, type WireEntry } from './protocol.js';

/** The sending side of a link to `peer`. */
export class LinkSender {
  private open = false;
  private cursor = 0;
  private sent = 0;
  private head = 0;
  private reading = false;
  /**
   * An append was reported while the current read was in flight. Its entries may be missing from that read
   * (the read's snapshot can predate their commit while the read's `head` already counted their numbers),
   * so an empty answer must not stop the reading.
   */
  private appendedWhileReading = false;
  private nextId = 1;
  private readonly inflight: InFlight[] = [];
  /** A batch read and judged, waiting to go; `from` is where its reading started (to read it again). */
  private pending: {
    frame: 'batch' | 'state';
    entries: WireEntry[];
    last: number;
    bytes: number;
    hlcMsMin: number | null;
    from: number | string | null;
  } | null = null;
  /** Bumped when the enforced policy changes: answers judged before are dropped. */
  private epoch = 0;
  /** A state catch-up in progress: where the document scan is, and the log position it stands for. */
  private catchUp: { after: string | null; scanning: boolean; snapshot: number; floor: number; scanned: boolean } | null = null;
  /**
   * After a catch-up, the log between the floor and the scan's snapshot is read once more for its purge
   * notices only (the scan sent every document the peer may hold, never one it must drop): up to this seq,
   * other entries are skipped. Null when not replaying.
   */
  private purgesOnlyUpTo: number | null = null;
  private wakeAtMs: number | null = null;
  private nextFlushAtMs = 0;
  /** Log position up to which everything was skipped (nothing for this peer); the cursor moves there once the batches before it are acknowledged. */
  private skippedTo = 0;
  /** When the oldest entry not yet read for sending was appended (null when everything is read). */
  private unsentSinceMs: number | null = null;
  private readonly forwarding: Forwarding;
  private nowMsLast = 0;
  private readonly cadence: CadenceController;
  readonly stats: SenderStats = { batches: 0, entries: 0, bytes: 0, skippedEntries: 0, deniedEntries: 0, forwardedEntries: 0, rewinds: 0, catchUps: 0 };

  /**
   * @param peer the peer's node id; entries it originated are never sent back to it
   * @param self this node's id
   * @param forward also send entries received from third nodes (for meshes with missing links); off in a
   *   full mesh, where every origin sends its own entries directly and forwarding would send each twice
   */
  constructor(
    readonly peer: string,
    private readonly self: string,
    private readonly forward: boolean,
    limits: RateLimits | RateGate,
    nowMs: number,
    private readonly fixed: FixedCadence | null = null,
    /** The lane: which datasets this stream carries (null = all) and its priority (0 = highest). */
    readonly lane: LaneSpec = mainLane,
  ) {
    this.cadence = new CadenceController(limits, nowMs, lane.priority, lane.limits ?? null);
    this.forwarding = new Forwarding();
    this.nowMsLast = nowMs;
    // Fixed cadences start at a per-link offset so that links do not all flush in the same instant.
    if (fixed !== null) this.nextFlushAtMs = nowMs + Math.floor(fixed.offsetFraction * fixed.intervalMs);
  }

  /** The sender's view, for status pages. */
  snapshot(nowMs: number): {
    open: boolean;
    cursor: number;
    sent: number;
    head: number;
    inflightBatches: number;
    windowBatches: number;
    backlogEntries: number;
    rttMs: number | null;
    oldestUnackedAgeMs: number | null;
    waitingForRateMs: number | null;
    oldestInflightSentAtMs: number | null;
  } {
    const hlcs = this.inflight.map((b) => b.hlcMsMin).filter((ms): ms is number => ms !== null);
    return {
      open: this.open,
      cursor: this.cursor,
      sent: this.sent,
      head: this.head,
      inflightBatches: this.inflight.length,
      windowBatches: this.cadence.windowBatches,
      backlogEntries: Math.max(0, this.head - this.cursor),
      rttMs: this.cadence.rtt.lastMs,
      oldestUnackedAgeMs: hlcs.length === 0 ? null : Math.max(0, nowMs - Math.min(...hlcs)),
      oldestInflightSentAtMs: this.inflight[0]?.sentAtMs ?? null,
      waitingForRateMs: this.wakeAtMs === null ? null : Math.max(0, this.wakeAtMs - nowMs),
    };
  }

  /** Advances the machine by one input at time `nowMs`. */
  step(input: SenderInput, nowMs: number): SenderEffect[] {
    assert(nowMs >= this.nowMsLast, 'clock went backwards');
    this.nowMsLast = nowMs;
    switch (input.kind) {
      case 'open':
        assert(!this.open, 'open on an open link');
        this.open = true;
        this.cursor = input.cursor;
        this.sent = input.cursor;
        this.head = Math.max(this.head, input.head);
        this.reading = false;
        this.pending = null;
        this.catchUp = null;
        this.purgesOnlyUpTo = null;
        if (input.floor !== undefined && input.cursor < input.floor) this.startCatchUp(input.committed ?? input.head, input.floor);
        return this.pump(nowMs);
      case 'policy':
        return this.onPolicy(nowMs);
      case 'truncated':
        if (!this.open || (input.epoch !== undefined && input.epoch !== this.epoch)) return this.open ? this.pump(nowMs) : [];
        this.reading = false;
        if (this.purgesOnlyUpTo !== null && this.catchUp === null) {
          // Truncated while replaying purge notices: the ones cut off were carried above the new floor.
          this.sent = Math.max(this.sent, input.floor);
          return this.pump(nowMs);
        }
        this.startCatchUp(input.committed, input.floor);
        return this.pump(nowMs);
      case 'scanned':
        if (input.epoch !== undefined && input.epoch !== this.epoch) return this.open ? this.pump(nowMs) : [];
        return this.onScanned(input.after, input.entries, input.next, nowMs, input.denied, input.heads);
      case 'appended':
        if (input.head > this.head && this.unsentSinceMs === null) this.unsentSinceMs = nowMs;
        if (this.reading) this.appendedWhileReading = true;
        this.head = Math.max(this.head, input.head);
        return this.open ? this.pump(nowMs) : [];
      case 'read':
        if (input.epoch !== undefined && input.epoch !== this.epoch) return this.open ? this.pump(nowMs) : [];
        return this.onRead(input.after, input.entries, input.head, nowMs, input.denied, input.heads, input.through);
      case 'ack':
        return this.onAck(input.id, input.last, nowMs);
      case 'peer-state':
        return this.onPeerState(input.have, input.down, nowMs);
      case 'tick':
        if (this.wakeAtMs !== null && nowMs >= this.wakeAtMs) this.wakeAtMs = null;
        return this.open ? this.pump(nowMs) : [];
      case 'closed':
        this.open = false;
        this.inflight.length = 0;
        this.pending = null;
        this.reading = false;
        this.catchUp = null;
        this.purgesOnlyUpTo = null;
        this.wakeAtMs = null;
        this.skippedTo = 0;
        this.unsentSinceMs = null;
        this.cadence.release();
        this.cadence.onReset();
        return [];
      default:
        return assertNever(input);
    }
  }

  private onRead(
    after: number,
    entries: readonly LogEntry[],
    head: number,
    nowMs: number,
    denied?: ReadonlySet<number>,
    heads?: ReadonlyMap<string, Uint8Array>,
    through?: number,
  ): SenderEffect[] {
    if (!this.open || !this.reading || after !== this.sent) {
      // A read that a reconnect made stale: ignore it (a newer read, if any, is still awaited).
      return this.open ? this.pump(nowMs) : [];
    }
    this.reading = false;
    if (entries.length === 0 && through !== undefined && through > after) {
      // No entry up to the committed mark: numbers a purge or a crash left unused. Pass them like skipped ones.
      return this.skipTo(through, nowMs);
    }
    if (entries.length === 0) {
      // The log holds nothing after `after` yet: its head counted writes still committing, or numbers a crash
      // left unused. Stop reading until the next append says there is more (unless one came meanwhile).
      if (this.head <= head && !this.appendedWhileReading) this.head = this.sent;
      return this.pump(nowMs);
    }
    const batch: WireEntry[] = [];
    let bytes = 0;
    let last = after;
    let hlcMsMin: number | null = null;
    // The first entry of each document in the batch carries the document's head: the receiver judges by it.
    const headed = new Set<string>();
    // A batch never carries more than the rate limits allow in one go.
    const caps = this.cadence.batchCaps();
    const bytesMax = Math.min(batchBytesMax, caps.bytes ?? Infinity);
    const entriesMax = Math.min(batchEntriesMax, caps.entries ?? Infinity);
    let consumed = 0;
    for (const entry of entries) {
      assert(entry.seq > last, 'log entries arrive in sequence order');
      if (batch.length >= entriesMax || (batch.length > 0 && bytes + entry.delta.length > bytesMax)) break;
      consumed++;
      last = entry.seq;
      // Replaying purge notices after a catch-up: what the scan already sent is skipped.
      const covered = this.purgesOnlyUpTo !== null && entry.seq <= this.purgesOnlyUpTo && entry.kind !== 'purge';
      if (covered || !laneCarries(this.lane, entry.dataset)) {
        this.stats.skippedEntries++;
        continue;
      }
      if (denied?.has(entry.seq) === true) {
        this.stats.deniedEntries++;
        continue;
      }
      // A state or purge entry is for its regions from whoever wrote it; it is never forwarded. A change without
      // an origin sequence number (a state joined here, facts a head taught this copy) is in no origin's
      // stream, so the origin may never send it: every node that logged it sends it on, forwarding or not (a
      // peer that has it skips it and logs nothing, so it goes no further; seed 10304).
      const unsequenced = entry.originSeq === 0 && entry.kind === undefined;
      if (entry.origin === this.peer || (entry.origin !== this.self && !unsequenced && (entry.kind !== undefined || !this.shouldForward(entry)))) {
        this.stats.skippedEntries++;
        continue;
      }
      const id = docKey(entry.dataset, entry.key);
      const docHead = headed.has(id) ? undefined : heads?.get(id);
      if (docHead !== undefined) headed.add(id);
      batch.push(docHead === undefined ? entry : { ...entry, head: docHead });
      bytes += entry.delta.length + (docHead?.length ?? 0);
      hlcMsMin = hlcMsMin === null ? entry.hlc.ms : Math.min(hlcMsMin, entry.hlc.ms);
    }
    // The whole read went into this batch and reached the end of the log: the numbers after it are unused.
    if (consumed === entries.length && through !== undefined && through > last) last = through;
    if (batch.length === 0) return this.skipTo(last, nowMs);
    this.head = Math.max(this.head, last);
    if (this.purgesOnlyUpTo !== null && last >= this.purgesOnlyUpTo) this.purgesOnlyUpTo = null;
    this.pending = { frame: 'batch', entries: batch, last, bytes, hlcMsMin, from: after };
    return this.pump(nowMs);
  }

  /** Nothing up to `last` is for this peer: advance without a frame, an acknowledgement or a disk write per read. */
  private skipTo(last: number, nowMs: number): SenderEffect[] {
    this.head = Math.max(this.head, last);
    if (this.purgesOnlyUpTo !== null && last >= this.purgesOnlyUpTo) this.purgesOnlyUpTo = null;
    this.sent = last;
    this.skippedTo = last;
    if (this.inflight.length === 0 && last > this.cursor) {
      this.cursor = last;
      return [{ kind: 'persist-cursor', cursor: last }, ...this.pump(nowMs)];
    }
    return this.pump(nowMs);
  }

  /** Whether to send a third node's entry: only to a peer that lacks it and cannot get it directly. */
  private shouldForward(entry: LogEntry): boolean {
    if (!this.forward) return false;
    const forward = this.forwarding.shouldForward(entry);
    if (forward) this.stats.forwardedEntries++;
    return forward;
  }

  private onPeerState(have: Readonly<Record<string, number>>, down: readonly string[], nowMs: number): SenderEffect[] {
    const rewindTo = this.forwarding.peerState(have, down);
    if (rewindTo !== null && this.open && rewindTo < this.sent && this.catchUp === null) {
      this.sent = Math.max(rewindTo, 0);
      this.pending = null;
      this.reading = false;
      this.stats.rewinds++;
    }
    return this.open ? this.pump(nowMs) : [];
  }

  /** The enforced policy changed: nothing judged under the previous one leaves. */
  private onPolicy(nowMs: number): SenderEffect[] {
    this.epoch++;
    if (!this.open) return [];
    const pending = this.pending;
    this.pending = null;
    this.reading = false;
    if (this.catchUp !== null) {
      this.catchUp.scanning = false;
      if (pending?.frame === 'state') {
        this.catchUp.after = pending.from as string | null;
        this.catchUp.scanned = false;
        this.purgesOnlyUpTo = null;
      }
    } else if (pending?.frame === 'batch') {
      this.sent = pending.from as number;
    }
    return this.pump(nowMs);
  }

  /** True while a state catch-up is running. */
  get catchingUp(): boolean {
    return this.catchUp !== null;
  }

  private startCatchUp(committed: number, floor: number): void {
    // Every entry up to `committed` is in the documents the scan reads; the log resumes at the floor, for
    // the purge notices up to `committed`, and everything after it.
    const snapshot = Math.max(committed, this.cursor);
    this.catchUp = { after: null, scanning: false, snapshot, floor: Math.min(Math.max(floor, this.cursor), snapshot), scanned: false };
    this.stats.catchUps++;
  }

  private onScanned(
    after: string | null,
    entries: ReadonlyArray<LogEntry & { readonly position: string }>,
    next: string | null,
    nowMs: number,
    denied?: ReadonlySet<string>,
    heads?: ReadonlyMap<string, Uint8Array>,
  ): SenderEffect[] {
    const catchUp = this.catchUp;
    if (!this.open || catchUp === null || !catchUp.scanning || after !== catchUp.after) return this.open ? this.pump(nowMs) : [];
    catchUp.scanning = false;
    const batch: WireEntry[] = [];
    let bytes = 0;
    let position = after;
    for (const entry of entries) {
      if (!laneCarries(this.lane, entry.dataset) || denied?.has(entry.position) === true) {
        if (denied?.has(entry.position) === true) this.stats.deniedEntries++;
        position = entry.position;
        continue;
      }
      if (batch.length > 0 && bytes + entry.delta.length > batchBytesMax) break;
      // A whole state is the sender's view of the document: its head says so to the receiver.
      const head = heads?.get(docKey(entry.dataset, entry.key));
      batch.push({
        seq: 1,
        dataset: entry.dataset,
        key: entry.key,
        origin: entry.origin,
        originSeq: entry.originSeq,
        hlc: entry.hlc,
        delta: entry.delta,
        ...(head === undefined ? {} : { head }),
      });
      bytes += entry.delta.length + (head?.length ?? 0);
      position = entry.position;
    }
    const done = next === null && position === (entries.at(-1)?.position ?? after);
    catchUp.after = position;
    catchUp.scanned = done;
    // Intermediate batches leave the cursor where it is; the last one moves it to the floor, from where the
    // log is read again for its purge notices up to the snapshot.
    this.pending = { frame: 'state', entries: batch, last: done ? catchUp.floor : this.cursor, bytes, hlcMsMin: null, from: after };
    if (done) this.purgesOnlyUpTo = catchUp.snapshot;
    return this.pump(nowMs);
  }

  private onAck(id: number, last: number, nowMs: number): SenderEffect[] {
    if (!this.open) return [];
    const first = this.inflight[0];
    if (first === undefined || first.id !== id || first.last !== last) {
      return [
        {
          kind: 'protocol-error',
          reason: `ack ${id}/${last} does not match the oldest unacknowledged batch ${first === undefined ? 'none' : `${first.id}/${first.last}`}`,
        },
      ];
    }
    this.inflight.shift();
    this.cadence.onAck(nowMs - first.sentAtMs);
    // Cursors never go backwards (an intermediate catch-up batch carries the cursor of its time).
    this.cursor = Math.max(this.cursor, last);
    if (this.inflight.length === 0) this.cursor = Math.max(this.cursor, this.skippedTo);
    if (this.catchUp?.scanned === true && this.inflight.length === 0 && this.pending === null) this.catchUp = null;
    return [{ kind: 'persist-cursor', cursor: this.cursor }, ...this.pump(nowMs)];
  }

  /** Sends what may be sent now, or asks for the next read, or arms a timer for the rate limit. */
  private pump(nowMs: number): SenderEffect[] {
    const effects: SenderEffect[] = [];
    // A lane with nothing pending must not hold lower-priority lanes back at the shared rate gate.
    if (this.pending === null) this.cadence.release();
    const inflightBytes = this.inflight.reduce((sum, batch) => sum + batch.bytes, 0);
    const roomForBytes = this.pending === null || this.inflight.length === 0 || inflightBytes + this.pending.bytes <= inflightBytesMax;
    if (this.pending !== null && this.inflight.length < this.cadence.windowBatches && roomForBytes) {
      const waitMs = Math.max(
        this.cadence.admitWaitMs(this.pending.bytes, this.pending.entries.length, nowMs),
        this.fixed === null ? 0 : this.nextFlushAtMs - nowMs,
      );
      if (waitMs > 0) {
        const atMs = nowMs + waitMs;
        if (this.wakeAtMs === null || atMs < this.wakeAtMs) {
          this.wakeAtMs = atMs;
          effects.push({ kind: 'wake', atMs });
        }
        return effects;
      }
      const batch = this.pending;
      this.pending = null;
      if (this.fixed !== null) {
        const spread = 1 + 0.2 * (this.fixed.jitter() - 0.5);
        this.nextFlushAtMs = nowMs + Math.max(1, Math.round(this.fixed.intervalMs * spread));
      }
      const id = this.nextId++;
      this.cadence.charge(batch.bytes, batch.entries.length, nowMs);
      this.inflight.push({ id, last: batch.last, sentAtMs: nowMs, bytes: batch.bytes, entries: batch.entries.length, hlcMsMin: batch.hlcMsMin });
      // A log batch continues from `sent` (which a rewind may have lowered); a state batch never lowers it.
      this.sent = batch.frame === 'batch' ? batch.last : Math.max(this.sent, batch.last);
      this.stats.batches++;
      this.stats.entries += batch.entries.length;
      this.stats.bytes += batch.bytes;
      effects.push({ kind: 'send', frame: batch.frame, id, last: batch.last, entries: batch.entries, bytes: batch.bytes });
    }
    const catchUp = this.catchUp;
    if (catchUp !== null) {
      // During a catch-up the document scan replaces the log; streaming resumes once its last batch is out.
      if (this.pending === null && !catchUp.scanning && !catchUp.scanned && this.inflight.length < this.cadence.windowBatches) {
        catchUp.scanning = true;
        effects.push({ kind: 'scan', after: catchUp.after, limit: catchUpScanEntriesMax, epoch: this.epoch });
      }
      if (!catchUp.scanned || this.pending !== null) return effects;
    }
    // Read ahead one batch while the window has room, so the next send does not wait for the disk.
    if (this.sent >= this.head) this.unsentSinceMs = null;
    const holdForFlush = this.fixed !== null && nowMs < this.nextFlushAtMs;
    if (holdForFlush && this.pending === null && this.sent < this.head) {
      // Read at flush time, so the batch carries everything appended until then.
      if (this.wakeAtMs === null || this.nextFlushAtMs < this.wakeAtMs) {
        this.wakeAtMs = this.nextFlushAtMs;
        effects.push({ kind: 'wake', atMs: this.nextFlushAtMs });
      }
    }
    // Adaptive batching: an idle link reads (and sends) at once; while batches are in flight, a few new entries
    // wait up to `coalesceMs` for company, so a busy link sends fewer, larger batches.
    const coalesceUntilMs = this.unsentSinceMs === null ? 0 : this.unsentSinceMs + coalesceMs;
    const coalescing = this.fixed === null && this.inflight.length > 0 && this.head - this.sent < coalesceEntriesMin && nowMs < coalesceUntilMs;
    if (coalescing && this.pending === null && !this.reading && (this.wakeAtMs === null || coalesceUntilMs < this.wakeAtMs)) {
      this.wakeAtMs = coalesceUntilMs;
      effects.push({ kind: 'wake', atMs: coalesceUntilMs });
    }
    if (
      !holdForFlush &&
      !coalescing &&
      this.pending === null &&
      !this.reading &&
      this.sent < this.head &&
      this.inflight.length < this.cadence.windowBatches + 1
    ) {
      this.reading = true;
      this.appendedWhileReading = false;
      effects.push({ kind: 'read', after: this.sent, limit: batchEntriesMax, epoch: this.epoch });
    }
    return effects;
  }
}
