/**
 * The invariants of DESIGN.md §8, checked during and after a run.
 *
 * During the run (after every event):
 * - residency on the wire: every entry put on the wire to a peer is allowed there by the sender's enforced
 *   policy at that moment, judged on the sender's copy of the document (a state entry must also name the
 *   peer's region; a purge notice, which carries the key but no value, must name it);
 * - residency on disk: every document a node stores is allowed in its region by the node's enforced policy,
 *   judged on the node's own copy (a fragment without an origin tag by the region of any node that wrote it);
 * - monotonic: per node, the committed sequence number, the log floor, the per-origin frontiers and the
 *   stored cursors never go backwards, across crashes too; acknowledged writes' HLCs strictly increase;
 * - unique dots: no two acknowledged writes carry the same dot.
 *
 * After the run: convergence per lineage, no lost acknowledged write, no resurrected delete, idempotent
 * replay (see `finalChecks`).
 */
import {
  type CausalContext,
  type DocState,
  type Dot,
  type Hlc,
  type Policy,
  compareHlc,
  decodeDoc,
  docExists,
  docFacts,
  encodeDoc,
  holdersOf,
  joinDocs,
  mayShip,
} from '@tessera/core';
import { type LogEntry, type PurgeEvent, type Replica } from '@tessera/store';
import { type SimNode } from './node.js';
import { type Random } from './random.js';

/** An acknowledged write. */
export interface AckedWrite {
  readonly node: string;
  readonly dataset: string;
  readonly key: string;
  readonly dot: Dot;
  readonly hlc: Hlc;
  readonly atMs: number;
  readonly kind: string;
}

/** An acknowledged delete and what it observed. */
export interface AckedDelete extends AckedWrite {
  readonly ctx: CausalContext;
}

function docId(dataset: string, key: string): string {
  return `${dataset}/${key}`;
}

function dotKey(dot: Dot): string {
  return `${dot[0]}:${dot[1]}`;
}

/** Every dot a context holds. */
function dotsOf(ctx: CausalContext): Set<string> {
  const { vector, cloud } = ctx.toJSON();
  const out = new Set<string>();
  for (const [node, counter] of vector) for (let i = 1; i <= counter; i++) out.add(`${node}:${i}`);
  for (const dot of cloud) out.add(dotKey(dot));
  return out;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/** Records and checks. Failures are collected; the simulation stops at the first batch of them. */
export class Checker {
  readonly failures: string[] = [];
  readonly writes: AckedWrite[] = [];
  readonly deletes: AckedDelete[] = [];
  /** Documents with a write whose outcome a crash hid (it may or may not exist, with a dot unknown here). */
  readonly uncertain = new Set<string>();
  /** Per document, when some node installed a policy under which its copy may be held nowhere. */
  readonly erasedAtMs = new Map<string, number[]>();
  private readonly dots = new Map<string, string>();
  private readonly hlcLast = new Map<string, Hlc>();
  private readonly changed = new Map<SimNode, Set<string>>();
  /** Per replica, the documents kept for handovers (read once per event). */
  private readonly handovers = new Map<Replica, Set<string>>();
  private pendingSends: Array<{ node: SimNode; peer: string; entries: readonly LogEntry[]; policy: Policy | null }> = [];
  private readonly marks = new Map<string, { committed: number; floor: number; frontier: Map<string, number>; cursors: Map<string, number> }>();
  readonly counts = { sentEntries: 0, sentChecked: 0, storedChecked: 0, fullScans: 0, replayed: 0, deliveredEntries: 0, deliveredForbiddenAtReceiver: 0 };

  constructor(
    private readonly regionOf: (node: string) => string,
    private readonly nodeIds: readonly string[],
  ) {}

  fail(message: string): void {
    this.failures.push(message);
  }

  // ---------------------------------------------------------------- records

  ackedWrite(write: AckedWrite): void {
    // Dots count per document: a dot names one write of one document.
    const key = `${docId(write.dataset, write.key)} ${dotKey(write.dot)}`;
    const previous = this.dots.get(key);
    const what = `${write.kind} of ${docId(write.dataset, write.key)} at ${write.node} (t=${write.atMs})`;
    if (previous !== undefined) this.fail(`unique dots: dot ${key} was issued twice: by ${previous} and by ${what}`);
    this.dots.set(key, what);
    const last = this.hlcLast.get(write.node);
    if (last !== undefined && compareHlc(write.hlc, last) <= 0) {
      this.fail(`monotonic: ${what} got HLC ${write.hlc.ms}.${write.hlc.c}, not after the node's previous acknowledged write ${last.ms}.${last.c}`);
    }
    this.hlcLast.set(write.node, write.hlc);
    this.writes.push(write);
  }

  ackedDelete(write: AckedDelete): void {
    this.ackedWrite(write);
    this.deletes.push(write);
  }

  docChanged(node: SimNode, dataset: string, key: string): void {
    let set = this.changed.get(node);
    if (set === undefined) this.changed.set(node, (set = new Set()));
    set.add(docId(dataset, key));
  }

  sent(node: SimNode, peer: string, entries: readonly LogEntry[]): void {
    this.counts.sentEntries += entries.length;
    this.pendingSends.push({ node, peer, entries, policy: node.replica?.policy ?? null });
  }

  erased(dataset: string, key: string, atMs: number): void {
    const id = docId(dataset, key);
    const list = this.erasedAtMs.get(id) ?? [];
    list.push(atMs);
    this.erasedAtMs.set(id, list);
  }

  /** A node dropped its copy: an erasure (no region may hold it) excuses the writes made before it. */
  purged(purge: PurgeEvent, atMs: number): void {
    if (purge.reason !== 'handover') this.erased(purge.dataset, purge.key, atMs);
  }

  // ---------------------------------------------------------------- after every event

  /** Runs the checks that follow an event: sends, changed documents, monotonic marks. */
  async afterEvent(nodes: readonly SimNode[]): Promise<void> {
    this.handovers.clear();
    const sends = this.pendingSends;
    this.pendingSends = [];
    for (const send of sends) await this.checkSend(send.node, send.peer, send.entries, send.policy);
    const changed = [...this.changed];
    this.changed.clear();
    for (const [node, ids] of changed) {
      const replica = node.replica;
      if (replica === null) continue;
      for (const id of [...ids].sort()) {
        const [dataset, key] = splitId(id);
        const state = await replica.state(dataset, key);
        if (state !== undefined) await this.checkStored(node, replica, dataset, key, state, 'after a change');
      }
    }
    for (const node of nodes) if (node.replica !== null) this.checkMarks(node, node.replica, null);
  }

  private async checkSend(node: SimNode, peer: string, entries: readonly LogEntry[], policy: Policy | null): Promise<void> {
    const replica = node.replica;
    if (policy === null) return;
    const peerRegion = this.regionOf(peer);
    for (const entry of entries) {
      this.counts.sentChecked++;
      const what = `residency (wire): ${node.id} sent ${entry.kind ?? 'change'} entry ${entry.seq} of ${docId(entry.dataset, entry.key)} (origin ${entry.origin}) to ${peer} in ${peerRegion} under policy v${policy.version}`;
      let state: DocState | undefined = replica === null ? undefined : await replica.state(entry.dataset, entry.key).catch(() => undefined);
      // Purged in the same event after it left: judge the entry by what it carries.
      if (state === undefined && entry.delta.length > 0 && entry.kind !== 'purge') state = decodeDoc(entry.delta);
      const facts = state === undefined ? null : docFacts(entry.dataset, entry.key, state);
      if (!mayShip(policy, facts, entry.kind ?? 'change', entry.to ?? [], peerRegion)) {
        const decision = facts === null ? null : policy.decide(facts, peerRegion);
        this.fail(
          `${what}: ${peerRegion} may not receive it (${entry.kind === undefined ? '' : `for ${(entry.to ?? []).join(', ')}; `}${decision === null ? 'no copy' : `${decision.reason}${decision.rule === undefined ? '' : ` "${decision.rule}"`}`}; tags ${facts?.tags.join(',') || 'none'}, origin ${facts?.origin ?? 'none'})`,
        );
      }
    }
  }

  /**
   * Residency on disk: the node's own policy lets its region hold its own copy — or the copy is kept for a
   * handover (the region that sends a document to the regions a new policy moves it to keeps it until they
   * acknowledged it, then purges it; at the end no handover may be pending).
   */
  async checkStored(node: SimNode, replica: Replica, dataset: string, key: string, state: DocState, when: string): Promise<void> {
    this.counts.storedChecked++;
    const policy = replica.policy;
    if (policy === null) return;
    if (!this.handovers.has(replica)) this.handovers.set(replica, await pendingHandovers(replica));
    if (this.handovers.get(replica)!.has(docId(dataset, key))) return;
    const facts = docFacts(dataset, key, state);
    if (!holdersOf(policy, facts).includes(node.region)) {
      this.fail(
        `residency (disk): ${node.id} in ${node.region} stores ${docId(dataset, key)} ${when}, which policy v${policy.version} keeps from ${node.region} (tags ${facts.tags.join(',') || 'none'}, origin ${facts.origin || 'unknown'})`,
      );
    }
  }

  /** Every stored document of a node (after a restart, a policy change, at the end). */
  async scanStored(node: SimNode, when: string): Promise<void> {
    const replica = node.replica;
    if (replica === null) return;
    this.counts.fullScans++;
    this.handovers.delete(replica);
    for (const { dataset, key, state } of await allDocs(replica)) await this.checkStored(node, replica, dataset, key, state, when);
  }

  /** Monotonic marks; `cursors` when read (restart, periodic, end). */
  checkMarks(node: SimNode, replica: Replica, cursors: Record<string, number> | null): void {
    const mark = this.marks.get(node.id) ?? { committed: 0, floor: 0, frontier: new Map<string, number>(), cursors: new Map<string, number>() };
    this.marks.set(node.id, mark);
    const fail = (what: string, before: number, now: number) =>
      this.fail(`monotonic: ${node.id}'s ${what} went from ${before} back to ${now} (incarnation ${node.incarnation})`);
    if (replica.committedSeq < mark.committed) fail('committed sequence number', mark.committed, replica.committedSeq);
    if (replica.lastSeq < replica.committedSeq) fail('last sequence number (below the committed one)', replica.committedSeq, replica.lastSeq);
    if (replica.logFloor < mark.floor) fail('log floor', mark.floor, replica.logFloor);
    mark.committed = Math.max(mark.committed, replica.committedSeq);
    mark.floor = Math.max(mark.floor, replica.logFloor);
    for (const [origin, seq] of Object.entries(replica.frontier())) {
      const before = mark.frontier.get(origin) ?? 0;
      if (seq < before) fail(`frontier of ${origin}`, before, seq);
      mark.frontier.set(origin, Math.max(before, seq));
    }
    for (const [peer, before] of mark.frontier.entries()) {
      if (!(peer in replica.frontier()) && before > 0) fail(`frontier of ${peer}`, before, 0);
    }
    if (cursors !== null) {
      for (const [peer, cursor] of Object.entries(cursors)) {
        const before = mark.cursors.get(peer) ?? 0;
        if (cursor < before) fail(`cursor of ${peer}`, before, cursor);
        mark.cursors.set(peer, Math.max(before, cursor));
      }
      for (const [peer, before] of mark.cursors) if (!(peer in cursors) && before > 0) fail(`cursor of ${peer}`, before, 0);
    }
  }

  // ---------------------------------------------------------------- replay

  /** Re-applies a sample of `from`'s own log to `to` (itself or a peer): nothing may change. */
  async replay(from: SimNode, to: SimNode, random: Random, sampleMax: number, when: string): Promise<void> {
    const source = from.replica;
    const target = to.replica;
    if (source === null || target === null) return;
    const { entries } = await source.deltasSince(source.logFloor, { limit: 2_000 });
    // A purge notice is for the regions it names, never its author's (which may since have re-created the
    // document: the notice's facts of the earlier copy are news to it, as they are to any region that learns them).
    let sample = random.sample(from === to ? entries.filter((entry) => entry.kind !== 'purge') : entries, sampleMax);
    if (from !== to) {
      const { allowed } = await source.sendable(sample, to.region);
      sample = sample.filter((_, i) => allowed[i]);
    }
    if (sample.length === 0) return;
    const ids = [...new Set(sample.map((entry) => docId(entry.dataset, entry.key)))].sort();
    const before = new Map<string, string>();
    for (const id of ids) {
      const [dataset, key] = splitId(id);
      const state = await target.state(dataset, key);
      before.set(id, state === undefined ? '-' : hex(encodeDoc(state)));
    }
    const lastSeq = target.lastSeq;
    this.counts.replayed += sample.length;
    const what = `idempotent replay (${when}): ${sample.length} entries of ${from.id}'s log re-applied to ${to.id}`;
    let result;
    try {
      result = await target.applyDeltas(sample, { from: from.region });
    } catch (error) {
      this.fail(`${what} failed: ${(error as Error).message}`);
      return;
    }
    if (result.applied !== 0) this.fail(`${what} applied ${result.applied} of them`);
    if (target.lastSeq !== lastSeq) this.fail(`${what} moved the log head from ${lastSeq} to ${target.lastSeq}`);
    for (const id of ids) {
      const [dataset, key] = splitId(id);
      const state = await target.state(dataset, key);
      const after = state === undefined ? '-' : hex(encodeDoc(state));
      if (after !== before.get(id)) this.fail(`${what} changed ${id}`);
    }
  }

  // ---------------------------------------------------------------- final

  /**
   * Convergence, lost writes and resurrected deletes, on the final states. Copies of a document that share a
   * dot form a lineage (copies that never exchanged anything — the same key created in regions that may not
   * share it — are separate lineages). Per lineage, T is the join of its copies and H the regions that may
   * hold T under the final policy: every node in H holds exactly T, and no node outside H holds a copy of it.
   */
  finalChecks(states: ReadonlyMap<string, ReadonlyMap<string, DocState>>, policy: Policy, atMs: number): string[] {
    const failures: string[] = [];
    const fail = (message: string) => failures.push(message);
    const lineageOf = new Map<string, Array<{ joined: DocState; dots: Set<string>; holders: string[] }>>();
    for (const [id, copies] of states) {
      const [dataset, key] = splitId(id);
      const items = [...copies].map(([node, state]) => ({ node, state, dots: dotsOf(state.ctx) }));
      // Union-find over copies sharing a dot.
      const parent = items.map((_, i) => i);
      const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i]!)));
      for (let i = 0; i < items.length; i++) {
        for (let j = i + 1; j < items.length; j++) {
          if ([...items[i]!.dots].some((dot) => items[j]!.dots.has(dot))) parent[find(i)] = find(j);
        }
      }
      const groups = new Map<number, typeof items>();
      items.forEach((item, i) => {
        const root = find(i);
        groups.set(root, [...(groups.get(root) ?? []), item]);
      });
      const lineages: Array<{ joined: DocState; dots: Set<string>; holders: string[] }> = [];
      for (const group of groups.values()) {
        let joined = group[0]!.state;
        for (const item of group.slice(1)) joined = joinDocs(joined, item.state).state;
        const facts = docFacts(dataset, key, joined);
        const regions = holdersOf(policy, facts);
        const holders = this.nodeIds.filter((node) => regions.includes(this.regionOf(node)));
        const encoded = hex(encodeDoc(joined));
        const names = group.map((item) => item.node).sort();
        for (const node of holders) {
          const copy = copies.get(node);
          if (copy === undefined)
            fail(`convergence: ${node} may hold ${id} (lineage of ${names.join(', ')}) under policy v${policy.version} but holds nothing at t=${atMs}`);
          else if (hex(encodeDoc(copy)) !== encoded)
            fail(`convergence: ${node}'s copy of ${id} differs from the join of its lineage (${names.join(', ')}) at t=${atMs}`);
        }
        for (const item of group) {
          if (!holders.includes(item.node)) {
            const own = docFacts(dataset, key, item.state);
            fail(
              `convergence: ${item.node} in ${this.regionOf(item.node)} holds ${id}, which policy v${policy.version} keeps from it (lineage of ${names.join(', ')}; holders ${regions.join(', ') || 'none'}; joined facts ${describeFacts(facts)}, its own ${describeFacts(own)})`,
            );
          }
        }
        lineages.push({ joined, dots: new Set(group.flatMap((item) => [...item.dots])), holders });
      }
      lineageOf.set(id, lineages);
    }
    for (const write of this.writes) {
      const id = docId(write.dataset, write.key);
      const excused = (this.erasedAtMs.get(id) ?? []).some((ms) => ms >= write.atMs);
      if (excused) continue;
      const lineages = lineageOf.get(id) ?? [];
      const found = lineages.some((lineage) => lineage.dots.has(dotKey(write.dot)));
      if (!found)
        fail(
          `lost write: the acknowledged ${write.kind} of ${id} at ${write.node} (t=${write.atMs}, dot ${dotKey(write.dot)}) is in no copy at the end${lineages.length === 0 ? ' (no node holds the document)' : ''}`,
        );
    }
    for (const del of this.deletes) {
      const id = docId(del.dataset, del.key);
      if (this.uncertain.has(id)) continue;
      const escaped = this.writes.some((write) => docId(write.dataset, write.key) === id && !del.ctx.has(write.dot) && dotKey(write.dot) !== dotKey(del.dot));
      if (escaped) continue;
      for (const [node, state] of states.get(id) ?? []) {
        if (docExists(state))
          fail(`resurrected delete: ${id} was deleted at ${del.node} (t=${del.atMs}) after every write to it, yet exists at ${node} at the end`);
      }
    }
    return failures;
  }
}

function describeFacts(facts: { tags: readonly string[]; origin: string | null }): string {
  return `origin ${facts.origin ?? 'none'}, tags [${facts.tags.join(',')}]`;
}

function splitId(id: string): [string, string] {
  const slash = id.indexOf('/');
  return [id.slice(0, slash), id.slice(slash + 1)];
}

/**
 * Documents a replica keeps only for a handover. The store exposes their number only; the checker reads their
 * keys from the committed records (layout.ts: `h\0<dataset>\0<key>`).
 */
export async function pendingHandovers(replica: Replica): Promise<Set<string>> {
  const out = new Set<string>();
  for await (const stored of replica.records().keys({ gte: 'h\u0000', lt: 'h\u0001' })) {
    const at = stored.indexOf('\u0000', 2);
    out.add(`${stored.slice(2, at)}/${stored.slice(at + 1)}`);
  }
  return out;
}

/** Every document a replica stores, with its state. */
export async function allDocs(replica: Replica): Promise<Array<{ dataset: string; key: string; state: DocState }>> {
  const out: Array<{ dataset: string; key: string; state: DocState }> = [];
  let after: string | null = null;
  for (;;) {
    const page = await replica.documentsAfter(after, 500);
    for (const entry of page.entries) out.push({ dataset: entry.dataset, key: entry.key, state: decodeDoc(entry.delta) });
    if (page.next === null) return out;
    after = page.next;
  }
}
