/**
 * The checker of a chaos run: given the history and the final state of every node (after the faults healed),
 * it lists every violation of DESIGN §8 it can see:
 *
 *   lost write    an acknowledged write's dot is missing from the document's context on a node allowed to hold it
 *   divergence    allowed copies differ in value, context or tags
 *   value         a document's final value is not one its history allows (a single writer's last acknowledged
 *                 write; a counter between the acknowledged and the possible sum; a set's acknowledged adds
 *                 and removes)
 *   resurrection  a document whose delete was acknowledged (and no write was concurrent with it) exists again
 *   residency     a forbidden document on a node (listed, readable, in its data files) or on the wire to it
 *   monotonicity  a node's last sequence number or a durable cursor went backwards, or fell below an
 *                 acknowledged write's sequence number
 *   refusal       a write the policy forbids was acknowledged; a daemon answered 5xx; a session-token read
 *                 answered without the write it waited for
 */
import { type Dot, type History, type Op } from './history.js';
import { type ChaosRegion, type DocId, allowedRegions, chaosRegions, docKeyOf, docOf, orderRegions } from './model.js';

/** A document as one node answers `GET /v1/kv/:dataset/:key`: 200 with the view, or the refusal's status. */
export interface FinalDoc {
  readonly status: number;
  readonly value?: unknown;
  readonly context?: { readonly vector: ReadonlyArray<readonly [string, number]>; readonly cloud: readonly Dot[] };
  readonly tags?: readonly string[];
}

/** Everything read from the nodes after healing. */
export interface FinalState {
  /** Per node id: per `dataset/key`, the node's answer. */
  readonly docs: ReadonlyMap<string, ReadonlyMap<string, FinalDoc>>;
  /** Per node id: per dataset, the keys it lists. */
  readonly lists: ReadonlyMap<string, ReadonlyMap<string, readonly string[]>>;
  /** Per node id: per token, the status of `GET ?token=…&waitMs=0` (asked for writes of documents the node answered 404 for). */
  readonly tokenReads: ReadonlyMap<string, ReadonlyMap<string, number>>;
}

/** A residency event seen on the wire: `marker` delivered to `region` over `link` at `atMs` (run time). */
export interface WireEvent {
  readonly marker: string;
  readonly region: string;
  readonly link: string;
  readonly atMs: number;
}

export interface CheckInput {
  readonly history: History;
  readonly final: FinalState;
  /** Node id of each region. */
  readonly nodeOf: Readonly<Record<ChaosRegion, string>>;
  /** Forbidden markers the taps saw, as they arrived. */
  readonly wireForbidden: readonly WireEvent[];
  /** Quarantine markers the taps saw arriving outside their origin region (checked against release times). */
  readonly wireQuarantine: readonly WireEvent[];
  /** Forbidden markers found in a node's data files at the end. */
  readonly diskFindings: readonly string[];
}

export interface CheckResult {
  readonly violations: string[];
  /**
   * Observations that are not violations: a node's lastSeq lower after a kill -9 than a value it reported
   * before (a number assigned to a write the crash lost before it was acknowledged, given out again).
   */
  readonly notes: string[];
  /** Per invariant, how many facts were checked (to show the checker did its work). */
  readonly checked: Record<string, number>;
}

/** True when the causal context holds the dot. */
export function contextHas(context: FinalDoc['context'], [node, counter]: Dot): boolean {
  if (context === undefined) return false;
  if (context.vector.some(([n, c]) => n === node && c >= counter)) return true;
  return context.cloud.some(([n, c]) => n === node && c === counter);
}

const canonical = (value: unknown): string => JSON.stringify(sortKeys(value));

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.keys(value).sort().map((name) => [name, sortKeys((value as Record<string, unknown>)[name])]));
  }
  return value;
}

const absent = Symbol('absent');
type Candidate = unknown | typeof absent;

/**
 * The values a single writer's sequence of operations may have left: the last acknowledged one, and any
 * whose outcome is unknown after it (they were sent later by the same client to the same node, so they can
 * only have come after it). `valueOf` gives an op's resulting value (`absent` for a delete).
 */
function candidates(ops: readonly Op[], valueOf: (op: Op) => Candidate): Candidate[] {
  const relevant = ops.filter((op) => op.outcome === 'ok' || op.outcome === 'info');
  let lastOk = -1;
  relevant.forEach((op, i) => {
    if (op.outcome === 'ok') lastOk = i;
  });
  const out: Candidate[] = lastOk < 0 ? [absent] : [valueOf(relevant[lastOk]!)];
  for (const op of relevant.slice(lastOk + 1)) out.push(valueOf(op));
  return out;
}

/** What the release of a quarantined document came to: acknowledged, unknown, or never (or refused). */
function releaseOf(ops: readonly Op[]): 'ok' | 'unknown' | 'none' {
  const releases = ops.filter((op) => op.kind === 'tag' && Array.isArray(op.args.add) && (op.args.add as string[]).includes('reviewed'));
  if (releases.some((op) => op.outcome === 'ok')) return 'ok';
  if (releases.some((op) => op.outcome === 'info')) return 'unknown';
  return 'none';
}

export function check(input: CheckInput): CheckResult {
  const { history, final, nodeOf } = input;
  const violations: string[] = [];
  const notes: string[] = [];
  const checked: Record<string, number> = {};
  const count = (what: string, n = 1): number => (checked[what] = (checked[what] ?? 0) + n);
  const fail = (text: string) => violations.push(text);

  // ---------------------------------------------------------------- answers during the run
  for (const op of history.ops) {
    if (op.status !== undefined && op.status >= 500) fail(`refusal: op ${op.id} (${op.kind} ${op.dataset}/${op.key} at ${op.node}) answered ${op.status} ${op.code ?? ''}`);
    if (op.dataset === 'orders' && op.kind !== 'read-token' && op.outcome === 'ok' && !orderRegions.includes(op.region as ChaosRegion)) {
      fail(`refusal: ${op.region} acknowledged a write of orders/${op.key}, which it may not hold (op ${op.id})`);
    }
    if (op.dataset === 'orders' && op.region === 'eu-central' && op.outcome === 'fail' && op.status !== undefined) {
      count('orders refused where forbidden');
      if (op.status !== 421) fail(`refusal: a write of orders in eu-central answered ${op.status}, not 421 (op ${op.id})`);
    }
    if (op.kind === 'read-token' && op.outcome === 'ok') {
      count('session-token reads');
      if (!contextHas(op.readContext as FinalDoc['context'], op.args.dot as Dot)) {
        fail(`lost write: a read of ${op.dataset}/${op.key} at ${op.node} with the token of ${(op.args.dot as Dot).join(':')} answered without it (op ${op.id})`);
      }
    }
  }

  // ---------------------------------------------------------------- documents
  const byDoc = new Map<string, Op[]>();
  for (const op of history.ops) {
    if (op.kind === 'read-token') continue;
    const id = docKeyOf(op.dataset, op.key);
    byDoc.set(id, [...(byDoc.get(id) ?? []), op]);
  }
  // Every document any node lists or any op wrote.
  const universe = new Set<string>(byDoc.keys());
  for (const lists of final.lists.values()) for (const [dataset, listed] of lists) for (const key of listed) universe.add(docKeyOf(dataset, key));

  for (const id of [...universe].sort()) {
    const slash = id.indexOf('/');
    const doc = docOf(id.slice(0, slash), id.slice(slash + 1));
    const ops = byDoc.get(id) ?? [];
    const release = doc.family === 'quar' ? releaseOf(ops) : 'none';
    const allowed = allowedRegions(doc, release);
    const answers = new Map(chaosRegions.map((region) => [region, final.docs.get(nodeOf[region])?.get(id)]));
    if (ops.length === 0) fail(`residency: ${id} is listed but no client wrote it`);

    // Residency: no forbidden node lists it or answers it.
    const forbidden = allowed === null ? [] : chaosRegions.filter((region) => !allowed.includes(region));
    for (const region of forbidden) {
      count('residency: forbidden copies checked');
      const listed = final.lists.get(nodeOf[region])?.get(doc.dataset)?.includes(doc.key) ?? false;
      if (listed) fail(`residency: ${region} lists ${id}, which it may not hold`);
      const answer = answers.get(region);
      if (answer?.status === 200) fail(`residency: ${region} answers 200 for ${id}, which it may not hold`);
    }

    // Where it may be held: copies converge, and hold every acknowledged write.
    const holders = allowed ?? [doc.origin!];
    const present = holders.map((region) => answers.get(region));
    count('convergence: documents');
    const views = present.map((answer) => (answer === undefined ? 'unread' : answer.status === 200 ? canonical({ value: answer.value, context: answer.context, tags: answer.tags }) : `status ${answer.status}`));
    if (new Set(views).size > 1) {
      fail(`divergence: ${id} differs between ${holders.join(', ')}: ${holders.map((region, i) => `${region}: ${views[i]!.slice(0, 300)}`).join(' | ')}`);
    }
    for (const op of ops) {
      if (op.outcome !== 'ok' || op.dot === null || op.dot === undefined) continue;
      if (doc.family === 'quar' && allowed === null) continue;
      for (const region of holders) {
        count('lost writes: acknowledged dots checked');
        const answer = answers.get(region);
        if (answer?.status === 200) {
          if (!contextHas(answer.context, op.dot)) fail(`lost write: ${region}'s ${id} lacks the acknowledged write ${op.dot.join(':')} (op ${op.id}, ${op.kind} at ${op.node})`);
          continue;
        }
        const tokenStatus = final.tokenReads.get(nodeOf[region])?.get(op.token!);
        if (tokenStatus !== 404) fail(`lost write: ${region} answers ${answer?.status} for ${id} and ${tokenStatus ?? 'nothing'} for the token of its acknowledged write ${op.dot.join(':')} (op ${op.id})`);
      }
    }

    // Values: what the history allows, on every copy (a divergent copy may also be a resurrected one).
    holders.forEach((region, i) => {
      const answer = answers.get(region);
      const value = answer?.status === 200 ? answer.value : absent;
      checkValue(doc, ops, value, region, fail, i === 0 ? count : () => 0);
    });
  }

  // ---------------------------------------------------------------- residency on the wire and on disk
  for (const event of input.wireForbidden) fail(`residency: ${event.marker} reached ${event.region} over ${event.link} at ${(event.atMs / 1000).toFixed(2)} s`);
  for (const event of input.wireQuarantine) {
    count('residency: quarantined values on the wire');
    // mv-q-<region>-c<i>-<n>. belongs to catalog/mk-q-<region>-c<i>-<n>: it may travel once its release was asked for.
    const key = `mk-q-${event.marker.slice('mv-q-'.length, -1)}`;
    const released = (byDoc.get(docKeyOf('catalog', key)) ?? []).some((op) => op.kind === 'tag' && (op.args.add as string[] | undefined)?.includes('reviewed') && op.outcome !== 'fail' && op.invokeMs <= event.atMs);
    if (!released) fail(`residency: quarantined ${key} reached ${event.region} over ${event.link} at ${(event.atMs / 1000).toFixed(2)} s, before any release`);
  }
  for (const finding of input.diskFindings) fail(`residency: ${finding}`);

  // ---------------------------------------------------------------- monotonicity
  const samplesByNode = new Map<string, typeof history.samples>();
  for (const sample of history.samples) samplesByNode.set(sample.node, [...(samplesByNode.get(sample.node) ?? []), sample]);
  for (const [node, samples] of samplesByNode) {
    const acked = history.ops.filter((op) => op.node === node && op.outcome === 'ok' && typeof op.seq === 'number' && op.kind !== 'read-token');
    let previous: (typeof samples)[number] | null = null;
    const cursorMax = new Map<string, { value: number; atMs: number }>();
    for (const sample of samples) {
      count('monotonicity: samples');
      if (previous !== null && sample.incarnation === previous.incarnation && sample.lastSeq < previous.lastSeq) {
        fail(`monotonicity: ${node}'s lastSeq went from ${previous.lastSeq} to ${sample.lastSeq} (${(previous.atMs / 1000).toFixed(1)} s → ${(sample.atMs / 1000).toFixed(1)} s) without a restart`);
      }
      if (previous !== null && sample.incarnation !== previous.incarnation && sample.lastSeq < previous.lastSeq) {
        notes.push(`${node}'s lastSeq was ${previous.lastSeq} before its restart and ${sample.lastSeq} after (numbers of unacknowledged writes the crash lost)`);
      }
      const ackedBefore = acked.filter((op) => op.completeMs! <= sample.atMs).reduce((max, op) => Math.max(max, op.seq!), 0);
      if (sample.lastSeq < ackedBefore) fail(`monotonicity: ${node}'s lastSeq ${sample.lastSeq} at ${(sample.atMs / 1000).toFixed(1)} s (incarnation ${sample.incarnation}) is below the acknowledged seq ${ackedBefore}`);
      for (const [peer, cursor] of Object.entries(sample.cursors)) {
        const max = cursorMax.get(peer);
        if (max !== undefined && cursor < max.value) fail(`monotonicity: ${node}'s durable cursor for ${peer} went from ${max.value} (${(max.atMs / 1000).toFixed(1)} s) to ${cursor} (${(sample.atMs / 1000).toFixed(1)} s, incarnation ${sample.incarnation})`);
        if (max === undefined || cursor > max.value) cursorMax.set(peer, { value: cursor, atMs: sample.atMs });
      }
      previous = sample;
    }
  }
  return { violations, notes, checked };
}

/** The value checks of one document, by family. */
function checkValue(doc: DocId, ops: readonly Op[], value: unknown, region: ChaosRegion, fail: (text: string) => void, count: (what: string, n?: number) => number): void {
  const id = docKeyOf(doc.dataset, doc.key);
  const show = (v: unknown) => (v === absent ? '(absent)' : JSON.stringify(v)?.slice(0, 200));
  switch (doc.family) {
    case 'own':
    case 'local':
    case 'order':
    case 'pii':
    case 'quar':
    case 'del': {
      const writes = ops.filter((op) => op.kind === 'put' || op.kind === 'delete');
      const allowed = candidates(writes, (op) => (op.kind === 'delete' ? absent : (op.args.value as unknown)));
      count(doc.family === 'del' ? 'deletes: documents checked' : 'values: single-writer documents');
      if (!allowed.some((candidate) => (candidate === absent ? value === absent : value !== absent && canonical(candidate) === canonical(value)))) {
        const deleted = writes.some((op) => op.kind === 'delete' && op.outcome === 'ok');
        fail(`${deleted && value !== absent ? 'resurrection' : 'value'}: ${id} at ${region} is ${show(value)}; its history allows ${allowed.map(show).join(' or ')}`);
      }
      return;
    }
    case 'shared': {
      // One field per client, each written by that client alone.
      const clients = new Set(ops.map((op) => op.client));
      for (const client of clients) {
        const field = `c${client}`;
        const writes = ops.filter((op) => op.client === client && (op.kind === 'set-field' || op.kind === 'delete-field'));
        const allowed = candidates(writes, (op) => (op.kind === 'delete-field' ? absent : op.args.value));
        const actual = value !== absent && typeof value === 'object' && value !== null && field in value ? (value as Record<string, unknown>)[field] : absent;
        count('values: shared-document fields');
        if (!allowed.some((candidate) => (candidate === absent ? actual === absent : actual !== absent && canonical(candidate) === canonical(actual)))) {
          fail(`value: field ${field} of ${id} at ${region} is ${show(actual)}; client ${client}'s history allows ${allowed.map(show).join(' or ')}`);
        }
      }
      return;
    }
    case 'hot': {
      const written = new Set(ops.filter((op) => op.outcome !== 'fail').map((op) => canonical(op.args.value)));
      const actual = value !== absent && typeof value === 'object' && value !== null ? (value as Record<string, unknown>).hot : absent;
      count('values: contended field');
      if (actual !== absent && !written.has(canonical(actual))) fail(`value: ${id}.hot at ${region} is ${show(actual)}, which no client wrote`);
      if (actual === absent && ops.some((op) => op.outcome === 'ok')) fail(`lost write: ${id}.hot at ${region} is absent although writes of it were acknowledged`);
      return;
    }
    case 'counter': {
      const sum = (outcome: Op['outcome']) => ops.filter((op) => op.outcome === outcome).reduce((total, op) => total + (op.args.amount as number), 0);
      const low = sum('ok');
      const high = low + sum('info');
      count('values: counters');
      const actual = value === absent ? 0 : (value as number);
      if (actual < low || actual > high) fail(`value: counter ${id} at ${region} is ${actual}; acknowledged increments sum to ${low}, possible ones to ${high}`);
      return;
    }
    case 'cart': {
      const actual = new Set(value === absent ? [] : (value as string[]));
      const elements = new Map<string, Op[]>();
      for (const op of ops) elements.set(op.args.element as string, [...(elements.get(op.args.element as string) ?? []), op]);
      for (const element of actual) if (!elements.has(element)) fail(`value: set ${id} at ${region} holds ${element}, which no client added`);
      for (const [element, history] of elements) {
        const add = history.find((op) => op.kind === 'add')!;
        const remove = history.find((op) => op.kind === 'remove');
        count('values: set elements');
        const mustHold = add.outcome === 'ok' && (remove === undefined || remove.outcome === 'fail');
        const mustNotHold = add.outcome === 'fail' || remove?.outcome === 'ok';
        if (mustHold && !actual.has(element)) fail(`lost write: set ${id} at ${region} lacks ${element}, whose add was acknowledged (op ${add.id})`);
        if (mustNotHold && actual.has(element)) fail(`${remove?.outcome === 'ok' ? 'resurrection' : 'value'}: set ${id} at ${region} holds ${element} (add ${add.outcome}, remove ${remove?.outcome ?? 'none'})`);
      }
      return;
    }
  }
}
