/**
 * The checker of a chaos run: given the history (operations, samples, policy versions), the final state of
 * every node after the faults healed, what the taps saw and what the disks hold, it lists every violation of
 * DESIGN §8 it can see. Each line starts with its class:
 *
 *   lost write    an acknowledged write's dot is missing from a copy that must hold the document (or a session
 *                 read answered without it); a write may be erased only when, under some policy version in
 *                 force after it, no region could hold its document (reported as a note)
 *   divergence    copies that must hold a document differ (value, context, tags, origin, type), or copies
 *                 anywhere disagree on the facts that decide placement, or nodes end on different policies
 *   value         a document's value, type or tags are not what its writes allow
 *   resurrection  a deleted document (or set element) is back
 *   facts         a document's origin is a region that never created it
 *   residency     a document's value delivered to a region the sender could not have let hold it (wire), a
 *                 node listing or answering a document it may not hold (views), a value of such a document in
 *                 its data files (disk), or a write acknowledged by a region that may not hold it
 *   monotonicity  a node's last sequence number or a durable cursor went backwards
 *   refusal       a daemon answered 5xx
 *   policy        the cluster lost an acknowledged policy version
 *
 * The pieces: checker-docs.ts (final state, document by document), checker-residency.ts (wire and disk),
 * judge.ts (what the history allows at a moment: facts, policy versions, erasure).
 */
import { checkDocuments } from './checker-docs.js';
import { checkDisks, checkWire } from './checker-residency.js';
import { type Dot, type History } from './history.js';
import { Judge } from './judge.js';
import { type ChaosRegion } from './model.js';
import { mayHold } from './policy.js';
import { type WireEvent } from './wire.js';

/** A document as one node answers `GET /v1/kv/:dataset/:key`: 200 with the view, or the refusal's status. */
export interface FinalDoc {
  readonly status: number;
  readonly type?: string;
  readonly value?: unknown;
  readonly context?: { readonly vector: ReadonlyArray<readonly [string, number]>; readonly cloud: readonly Dot[] };
  readonly tags?: readonly string[];
  readonly origin?: string | null;
}

/** Everything read from the nodes after healing. */
export interface FinalState {
  /** Per node id: per `dataset/key`, the node's answer. */
  readonly docs: ReadonlyMap<string, ReadonlyMap<string, FinalDoc>>;
  /** Per node id: per dataset, the keys it lists. */
  readonly lists: ReadonlyMap<string, ReadonlyMap<string, readonly string[]>>;
  /** Per node id: per token, the status of `GET ?token=…&waitMs=0` (asked for writes of documents the node answered other than 200 for). */
  readonly tokenReads: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** Per node id: the policy version it enforces at the end. */
  readonly policyVersions: ReadonlyMap<string, number | null>;
}

export interface CheckInput {
  readonly history: History;
  readonly final: FinalState;
  /** Node id of each region. */
  readonly nodeOf: Readonly<Record<ChaosRegion, string>>;
  /** The region of each client's node. */
  readonly regionOfClient: (client: number) => ChaosRegion;
  /** Markers the taps saw delivered. */
  readonly wire: readonly WireEvent[];
  /** Per node id: the markers in its data files (marker → a file holding it). */
  readonly disks: ReadonlyMap<string, ReadonlyMap<string, string>>;
}

export interface CheckResult {
  readonly violations: string[];
  /**
   * Observations that are not violations: writes erased because a policy version left their document no
   * region; a node's lastSeq lower after a kill -9 than a value it reported before; refused policy installs.
   */
  readonly notes: string[];
  /** Per invariant, how many facts were checked (to show the checker did its work). */
  readonly checked: Record<string, number>;
}

/** What every part of the checker reports into. */
export interface Report {
  fail(text: string): void;
  note(text: string): void;
  count(what: string, n?: number): void;
}

/** True when the causal context holds the dot. */
export function contextHas(context: FinalDoc['context'], [node, counter]: Dot): boolean {
  if (context === undefined) return false;
  if (context.vector.some(([n, c]) => n === node && c >= counter)) return true;
  return context.cloud.some(([n, c]) => n === node && c === counter);
}

export function check(input: CheckInput): CheckResult {
  const violations: string[] = [];
  const notes: string[] = [];
  const checked: Record<string, number> = {};
  const report: Report = {
    fail: (text) => violations.push(text),
    note: (text) => notes.push(text),
    count: (what, n = 1) => void (checked[what] = (checked[what] ?? 0) + n),
  };
  const judge = new Judge(input.history, input.regionOfClient);
  checkAnswers(input, judge, report);
  const finalVersion = checkFinalPolicy(input, judge, report);
  const forbidden = checkDocuments(input, judge, finalVersion, report);
  checkWire(input, judge, report);
  checkDisks(input, forbidden, report);
  checkMonotonicity(input.history, report);
  return { violations, notes: [...new Set(notes)], checked };
}

/** Answers during the run: 5xx, session reads, writes acknowledged where the writer may not hold the document. */
function checkAnswers({ history }: CheckInput, judge: Judge, report: Report): void {
  for (const op of history.ops) {
    if (op.status !== undefined && op.status >= 500)
      report.fail(`refusal: op ${op.id} (${op.kind} ${op.dataset}/${op.key} at ${op.node}) answered ${op.status} ${op.code ?? ''}`);
    if (op.kind === 'read-token' && op.outcome === 'ok') {
      report.count('session-token reads');
      if (!contextHas(op.readContext as FinalDoc['context'], op.args.dot as Dot)) {
        report.fail(
          `lost write: a read of ${op.dataset}/${op.key} at ${op.node} with the token of ${(op.args.dot as Dot).join(':')} answered without it (op ${op.id})`,
        );
      }
      continue;
    }
    if (op.kind === 'policy') {
      if (op.outcome === 'fail' && op.status !== undefined) report.note(`policy v${op.args.version} was refused by ${op.node}: ${op.status} ${op.code ?? ''}`);
      continue;
    }
    // A write answered without a sequence number changed nothing (a tag or field removed from a document the
    // node does not hold): it holds nothing it may not. (checker-docs.ts reports it if the change was then lost.)
    if (op.outcome !== 'ok' || op.kind === 'delete' || op.seq === null) continue;
    // The state after the write: the writer must be allowed to hold it under some version it could enforce.
    report.count('residency: acknowledged writes judged');
    const versions = judge.versionsOf(op.node, op.invokeMs, op.completeMs!);
    const facts = judge.factsAt(op.dataset, op.key, op.completeMs!, op);
    const allowed = versions.some((version) => facts.some((f) => mayHold(judge.shape(version), f, op.region)));
    if (!allowed && facts.length > 0) {
      report.fail(
        `residency: ${op.region} acknowledged op ${op.id} (${op.kind} ${op.dataset}/${op.key}) although it may hold the document under no policy it could enforce (v${versions.join(', v')}) with any facts it could have (${judge.describeFacts(facts)})`,
      );
    }
  }
}

/** Every node ends on one policy version, at least the newest one a node acknowledged. Returns it (or the newest seen). */
function checkFinalPolicy({ final, history }: CheckInput, judge: Judge, report: Report): number {
  const versions = [...final.policyVersions.entries()];
  const distinct = new Set(versions.map(([, version]) => version));
  report.count('policy: final versions compared', versions.length);
  if (distinct.size > 1)
    report.fail(`divergence: the nodes end on different policy versions: ${versions.map(([node, version]) => `${node} v${version}`).join(', ')}`);
  const newest = Math.max(...versions.map(([, version]) => version ?? 1));
  const acknowledged = Math.max(1, ...history.ops.filter((op) => op.kind === 'policy' && op.outcome === 'ok').map((op) => op.args.version as number));
  if (newest < acknowledged) report.fail(`policy: v${acknowledged} was acknowledged, but the cluster ended on v${newest}`);
  if (!judge.hasShape(newest)) report.fail(`policy: a node enforces v${newest}, which the schedule never installed`);
  return judge.hasShape(newest) ? newest : acknowledged;
}

/** Last sequence numbers and durable cursors never go back (a lower lastSeq after a kill -9 is a note). */
function checkMonotonicity(history: History, report: Report): void {
  const samplesByNode = new Map<string, typeof history.samples>();
  for (const sample of history.samples) samplesByNode.set(sample.node, [...(samplesByNode.get(sample.node) ?? []), sample]);
  for (const [node, samples] of samplesByNode) {
    const acked = history.ops.filter(
      (op) => op.node === node && op.outcome === 'ok' && typeof op.seq === 'number' && op.kind !== 'read-token' && op.kind !== 'policy',
    );
    let previous: (typeof samples)[number] | null = null;
    const cursorMax = new Map<string, { value: number; atMs: number }>();
    for (const sample of samples) {
      report.count('monotonicity: samples');
      if (previous !== null && sample.incarnation === previous.incarnation && sample.lastSeq < previous.lastSeq) {
        report.fail(
          `monotonicity: ${node}'s lastSeq went from ${previous.lastSeq} to ${sample.lastSeq} (${(previous.atMs / 1000).toFixed(1)} s → ${(sample.atMs / 1000).toFixed(1)} s) without a restart`,
        );
      }
      if (previous !== null && sample.incarnation !== previous.incarnation && sample.lastSeq < previous.lastSeq) {
        report.note(
          `${node}'s lastSeq was ${previous.lastSeq} before its restart and ${sample.lastSeq} after (numbers of unacknowledged writes the crash lost)`,
        );
      }
      const ackedBefore = acked.filter((op) => op.completeMs! <= sample.atMs).reduce((max, op) => Math.max(max, op.seq!), 0);
      if (sample.lastSeq < ackedBefore)
        report.fail(
          `monotonicity: ${node}'s lastSeq ${sample.lastSeq} at ${(sample.atMs / 1000).toFixed(1)} s (incarnation ${sample.incarnation}) is below the acknowledged seq ${ackedBefore}`,
        );
      for (const [peer, cursor] of Object.entries(sample.cursors)) {
        const max = cursorMax.get(peer);
        if (max !== undefined && cursor < max.value)
          report.fail(
            `monotonicity: ${node}'s durable cursor for ${peer} went from ${max.value} (${(max.atMs / 1000).toFixed(1)} s) to ${cursor} (${(sample.atMs / 1000).toFixed(1)} s, incarnation ${sample.incarnation})`,
          );
        if (max === undefined || cursor > max.value) cursorMax.set(peer, { value: cursor, atMs: sample.atMs });
      }
      previous = sample;
    }
  }
}
