/**
 * Joining deltas received from other replicas. The batch is checked whole first (validate.ts). Then, per
 * document, the receiver judges the copy the batch would leave (`planReceive`, core): it applies what it may
 * hold and refuses the rest — reported in the result, audited, never half-applied for one document — and a
 * copy here whose facts the sender's head changed takes those facts even when refused, and is handed over.
 * Whatever the plan sets in motion (whole states for regions that lack content, purge notices for regions
 * that must drop a copy, handovers) is committed in the same atomic batch as the joined states and their log
 * entries; only then is anything acknowledged or published.
 */
import {
  type DocState,
  type Hlc,
  TesseraError,
  coversMarker,
  crdtType,
  docBytesMax,
  docExists,
  docFacts,
  docHead,
  emptyDoc,
  encodeDoc,
  hex64,
  joinDelta,
  joinDocs,
  markerHead,
  planReceive,
  sameFacts,
} from '@tessera/core';
import { type CacheEntry } from '../cache.js';
import { encodeLogEntry } from '../log-entry.js';
import { conflictKey, docKey, frontierKey, logKey, owedKey, parseLogKey } from '../layout.js';
import { type BatchOp } from '../storage/port.js';
import { type ApplyResult, type ChangeEvent, type ConflictRecord, type RemoteDelta } from '../types.js';
import { type ReplicaCore, jsonBytes } from './core.js';
import { handoverOp, purgeDocs } from './governance.js';
import { fanoutOps } from './log.js';
import { type DecodedDelta, validateBatch } from './validate.js';

/** Document digests listed in one audit entry about refused deltas. */
export const auditDigestsMax = 20;

interface Group {
  readonly dataset: string;
  readonly key: string;
  readonly items: DecodedDelta[];
}

/** What one document's entries did, staged until the batch commits. */
interface Staged {
  state: DocState;
  readonly events: ChangeEvent[];
}

/** The batch's work in progress: operations, staged states, counts. */
class ApplyRun {
  readonly ops: BatchOp[] = [];
  readonly staged = new Map<CacheEntry, Staged>();
  readonly refused: number[] = [];
  readonly refusedDocs: Array<{ dataset: string; key: string; reason: string }> = [];
  readonly frontier = new Map<string, number>();
  readonly conflicted: string[] = [];
  readonly erase: Array<{ dataset: string; key: string }> = [];
  applied = 0;
  skipped = 0;
  /** A copy held here took other placement facts: links judge again what they have not sent. */
  factsChanged = false;
  giveUps = 0;
  recordedAt: Hlc | null = null;

  constructor(readonly c: ReplicaCore) {}

  /**
   * Logs a change to a document: a received delta, or a head that changed the copy (`head`: logged without
   * its entry's origin sequence number, so that no peer takes it for that entry).
   */
  log(group: Group, item: DecodedDelta, bytes: Uint8Array, staged: Staged, state: DocState, head = false): void {
    const seq = this.c.nextSeq();
    this.ops.push({ type: 'put', key: logKey(seq), value: encodeLogEntry(group.dataset, group.key, item.origin, head ? 0 : item.originSeq, item.hlc, bytes) });
    staged.state = state;
    staged.events.push({ dataset: group.dataset, key: group.key, seq, source: 'remote', origin: item.origin, deleted: !docExists(state) });
  }
}

function groupsOf(items: readonly DecodedDelta[]): Group[] {
  const groups = new Map<string, Group>();
  for (const item of items) {
    const id = docKey(item.dataset, item.key);
    let group = groups.get(id);
    if (group === undefined) groups.set(id, (group = { dataset: item.dataset, key: item.key, items: [] }));
    group.items.push(item);
  }
  return [...groups.values()];
}

/**
 * Everything the sender sent of a document — its heads and its entries — joined, and its view of the facts:
 * the heads the link attached, and the purge notices that tell this copy something new. A notice this copy
 * already knows (a replay, a retransmission) is content only: it must not look like a sender that lags.
 */
function incomingOf(group: Group, local: DocState | null): { all: DocState; heads: DocState | null } {
  let all = emptyDoc(group.items[0]!.doc.type);
  let heads: DocState | null = null;
  for (const item of group.items) {
    const view = item.head ?? (item.kind === 'purge' && (local === null || joinDelta(local, item.doc).changed) ? item.doc : null);
    if (view !== null) {
      heads = heads === null ? view : joinDocs(heads, view).state;
      all = joinDocs(all, view).state;
    }
    all = joinDocs(all, item.doc).state;
  }
  return { all, heads };
}

/** Joins the entries of a document the receiver may hold: heads first (they carry the facts), then each delta. */
function accept(run: ApplyRun, group: Group, local: DocState | null, staged: Staged): void {
  const c = run.c;
  let state = local ?? emptyDoc(group.items[0]!.doc.type);
  for (const item of group.items) {
    // A head that tells this copy something is logged with the entry it came with (one change, one entry), or
    // alone when the entry itself is known here.
    let headed: DocState | null = null;
    if (item.head !== null) {
      const joined = joinDelta(state, item.head);
      if (joined.changed) {
        headed = item.head;
        state = joined.state;
      }
    }
    const { state: next, conflicts, changed } = joinDelta(state, item.doc);
    if (!changed) {
      run.skipped++;
      if (headed !== null) run.log(group, item, encodeDoc(headed), staged, state, true);
      continue;
    }
    try {
      crdtType(next.type).check?.(next.body);
    } catch (error) {
      throw new TesseraError('ERR_DELTA_INVALID', `applyDeltas: delta for ${group.dataset}/${group.key} from ${item.origin}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    c.clock.observe(item.hlc);
    // A notice's facts are logged as a change: the copy changed, and whoever this region serves learns them.
    run.log(group, item, headed === null ? item.bytes : encodeDoc(joinDocs(headed, item.doc).state), staged, (state = next));
    if (item.kind !== 'purge') run.applied++;
    for (const finding of conflicts) {
      const id = hex64(
        `${finding.path.join('\u0000')}|${finding.kind}|${JSON.stringify(finding.loser.dot)}|${JSON.stringify(finding.loser.hlc)}|${finding.loser.dot === null ? JSON.stringify(finding.loser.value) : ''}`,
      );
      run.recordedAt ??= c.now();
      const record: ConflictRecord = { id, dataset: group.dataset, key: group.key, ...finding, recordedAt: run.recordedAt, origin: item.origin };
      run.ops.push({ type: 'put', key: conflictKey(group.dataset, group.key, id), value: jsonBytes(record) });
      run.conflicted.push(docKey(group.dataset, group.key));
      c.observer?.conflict(group.dataset, finding.kind);
    }
  }
}

function applyGroup(run: ApplyRun, group: Group, entry: CacheEntry, from: string): void {
  const c = run.c;
  const { dataset, key } = group;
  const local = entry.state;
  const incoming = incomingOf(group, local);
  const merged = local === null ? incoming.all : joinDocs(local, incoming.all).state;
  const mergedFacts = docFacts(dataset, key, merged);
  // The sender's view of the facts is its head; deltas alone say nothing of it (a replay of old deltas must
  // not look like a sender that lags), so without a head the sender is taken to see what the merge gives.
  const incomingFacts = incoming.heads === null ? mergedFacts : docFacts(dataset, key, incoming.heads);
  // A document this region purged: a copy from a sender that has not seen what made it purge is stale.
  const marker = local === null ? c.markerOf(dataset, key) : null;
  if (marker !== null && !coversMarker(incoming.all, incoming.heads ?? incoming.all, marker)) {
    for (const item of group.items) if (item.kind !== 'purge') run.refused.push(item.index);
    if (group.items.some((item) => item.kind !== 'purge')) {
      run.refusedDocs.push({ dataset, key, reason: 'stale' });
      // What the marker still knows of the lineage (its origin and type stamps) goes back as a purge notice:
      // a sender that lags them judges its copy again (a concurrent creation learns the lineage's origin).
      const head = markerHead(marker, incoming.all.type);
      if (joinDelta(incoming.heads ?? incoming.all, head).changed && from !== c.region) {
        const notice = fanoutOps(c, dataset, key, c.now(), encodeDoc(head), encodeDoc(head), [], [from]);
        run.ops.push(...notice, ...notice.map((op) => ({ type: 'put' as const, key: owedKey(parseLogKey(op.key)), value: jsonBytes(1) })));
      }
    }
    return;
  }
  const plan = planReceive(c.enforced, c.region, local === null ? null : docFacts(dataset, key, local), incomingFacts, mergedFacts, from);
  const staged: Staged = { state: local ?? emptyDoc(incoming.all.type), events: [] };
  let stateTo = plan.stateTo;
  if (plan.accept) {
    accept(run, group, local, staged);
  } else {
    for (const item of group.items) if (item.kind !== 'purge') run.refused.push(item.index);
    if (group.items.some((item) => item.kind !== 'purge')) run.refusedDocs.push({ dataset, key, reason: plan.decision.reason });
    if (local === null) return;
    // The copy here takes the sender's facts (never its values), and must go: its own writes first reach the
    // regions that may hold the document as merged, then it is purged.
    const head = docHead(merged);
    const joined = joinDelta(local, head);
    if (joined.changed) {
      run.log(group, group.items[0]!, encodeDoc(head), staged, joined.state, true);
      // The copy learnt what makes it go: its whole state goes to every holder first. Whether a holder has
      // its writes cannot be told from facts (the sender of a notice may hold no copy: it purged, or refused
      // this copy as stale), and the handover waits for these states, so nothing of the copy goes with it.
      stateTo = [...new Set([...stateTo, ...plan.handoverTo.filter((r) => r !== c.region)])].sort();
    }
    // The copy waits for the regions that may hold the document (its writes must reach one); the regions that
    // must drop theirs get a notice, which outlives the copy (an owed notice) until they acknowledge it.
    if (plan.handoverTo.length === 0) run.erase.push({ dataset, key });
    else run.giveUps++;
  }
  for (const item of group.items) {
    if (item.origin !== c.node && item.originSeq > (run.frontier.get(item.origin) ?? c.originFrontier.get(item.origin) ?? 0) && plan.accept) {
      run.frontier.set(item.origin, item.originSeq);
    }
  }
  const changed = staged.events.length > 0;
  if (changed && local !== null && !sameFacts(docFacts(dataset, key, local), docFacts(dataset, key, staged.state))) run.factsChanged = true;
  const stateBytes = changed ? encodeDoc(staged.state) : null;
  if (stateBytes !== null) {
    if (stateBytes.length > docBytesMax) {
      throw new TesseraError(
        'ERR_VALUE_TOO_LARGE',
        `${dataset}/${key}: remote deltas would grow the document to ${stateBytes.length} bytes, over the limit of ${docBytesMax} bytes`,
      );
    }
    run.ops.push({ type: 'put', key: docKey(dataset, key), value: stateBytes });
    run.staged.set(entry, staged);
  }
  const held = changed || local !== null;
  if (held && (stateTo.length > 0 || plan.purgeTo.length > 0)) {
    run.ops.push(...fanoutOps(c, dataset, key, c.now(), stateBytes ?? encodeDoc(staged.state), encodeDoc(docHead(staged.state)), stateTo, plan.purgeTo));
  }
  if (!plan.accept && local !== null && plan.handoverTo.length > 0) run.ops.push(handoverOp(c, dataset, key, plan.handoverTo));
  for (const kind of plan.audit) run.ops.push(...c.auditOps(kind, { dataset, doc: c.keyDigest(dataset, key) }));
}

/**
 * Joins deltas received from another replica (`from`: its region). Returns what was applied, skipped (seen
 * before) and refused (see `ApplyResult`).
 */
export async function applyDeltas(c: ReplicaCore, batch: readonly RemoteDelta[], options: { readonly from?: string } = {}): Promise<ApplyResult> {
  c.checkOpen();
  const decoded = validateBatch(batch);
  const groups = groupsOf(decoded);
  const pinned = await c.pinAll(groups);
  const run = new ApplyRun(c);
  try {
    c.checkOpen();
    const from = options.from ?? '';
    // From here to the commit nothing awaits: sequence numbers are taken in the turn their batch is queued.
    for (const group of groups) applyGroup(run, group, pinned.get(docKey(group.dataset, group.key))!, from);
    if (run.refusedDocs.length > 0) {
      const datasets = [...new Set(run.refusedDocs.map((r) => r.dataset))].sort();
      const reasons = [...new Set(run.refusedDocs.map((r) => r.reason))].sort();
      run.ops.push(
        ...c.auditOps('rejected', {
          from: options.from ?? null,
          count: run.refused.length,
          batch: decoded.length,
          datasets,
          reasons,
          docs: [...new Set(run.refusedDocs.map((r) => c.keyDigest(r.dataset, r.key)))].slice(0, auditDigestsMax),
        }),
      );
    }
    for (const [origin, originSeq] of run.frontier) run.ops.push({ type: 'put', key: frontierKey(origin), value: jsonBytes(originSeq) });
    const last = c.seqLast;
    for (const [entry, staged] of run.staged) entry.state = staged.state;
    if (run.ops.length > 0) await c.commit(run.ops);
    for (const [entry, staged] of run.staged) {
      const seq = staged.events.at(-1)!.seq;
      if (seq > entry.committedSeq) {
        entry.committed = staged.state;
        entry.committedSeq = seq;
      }
    }
    c.committed(last);
    for (const [origin, originSeq] of run.frontier) if (originSeq > (c.originFrontier.get(origin) ?? 0)) c.originFrontier.set(origin, originSeq);
    for (const id of run.conflicted) c.conflicted.add(id);
    for (const staged of run.staged.values()) for (const event of staged.events) c.emitChange(event);
    if (run.factsChanged) c.events.emit('facts');
    if (run.staged.size === 0 && last > 0 && run.ops.length > 0) c.events.emit('appended', last);
  } finally {
    for (const entry of pinned.values()) c.unpin(entry);
  }
  const erased = run.erase.length === 0 ? 0 : await purgeDocs(c, run.erase, () => ({ reason: 'no region may hold it' }));
  return { applied: run.applied, skipped: run.skipped, refused: run.refused.sort((a, b) => a - b), lastSeq: c.seqLast, purged: run.giveUps + erased };
}
