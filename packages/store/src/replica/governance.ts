/**
 * Governance: policy versions (stored immutably, enforced or tried in shadow mode), the re-evaluation of the
 * stored documents when the enforced version changes (`planPolicy`), handovers (a copy this region must give
 * up stays until the regions that may hold it have its writes), and purges. A purge drops a document's state,
 * log entries, conflict records and handover record in one batch with an audit entry, keeps a counter floor
 * by key digest so later writes here never reuse dots, and compacts the storage so no readable byte stays.
 */
import {
  type DocFacts,
  type DocState,
  type Policy,
  type PurgeMarker,
  TesseraError,
  checkPolicySuccession,
  formatPolicySignature,
  parsePolicySignature,
  verifyPolicySignature,
  markerForm,
  markerOf,
  decodeDoc,
  docFacts,
  docHead,
  encodeDoc,
  holdersOf,
  parsePolicy,
  planPolicy,
} from '@tessera/core';
import { decodeLogEntry } from '../log-entry.js';
import {
  allDocsRange,
  conflictRange,
  docKey,
  docRange,
  floorKey,
  handoverKey,
  handoverRange,
  logKey,
  logRange,
  owedKey,
  owedRange,
  parseDocKey,
  parseOwedKey,
  parseHandoverKey,
  parseLogKey,
  policyKey,
  policyRange,
  policyStateKey,
} from '../layout.js';
import { docSecretKey } from '../layout.js';
import { type BatchOp } from '../storage/port.js';
import { type PolicyMode, type PolicyRecord, type PolicyReport } from '../types.js';
import { type ReplicaCore, jsonBytes, parseJsonBytes, policyHash } from './core.js';
import { fanoutOps } from './log.js';

/** Documents re-evaluated per step when a policy is enforced or planned (one write batch per step). */
export const policyScanStepMax = 500;

/** The policy state kept in the data directory. */
interface PolicyState {
  readonly enforce: { readonly version: number; readonly hash: string } | null;
  readonly shadow: { readonly version: number; readonly hash: string } | null;
  /**
   * The stored documents are being judged under the enforced version (the version it replaced: null for
   * none). Set in the batch that enforces it, cleared when the judging is done: a crash in between resumes
   * the judging at the next open, so no copy outlives a version that took it from this region.
   */
  readonly judging?: { readonly previous: number | null };
}

/** The stored record of one policy version. */
export async function policyRecord(c: ReplicaCore, version: number): Promise<PolicyRecord | undefined> {
  const bytes = await c.storage.get(policyKey(version));
  return bytes === undefined ? undefined : (parseJsonBytes(bytes) as PolicyRecord);
}

/** Stored policy versions, oldest first. */
export async function policyHistory(c: ReplicaCore): Promise<PolicyRecord[]> {
  c.checkOpen();
  const out: PolicyRecord[] = [];
  for await (const [, bytes] of c.storage.entries(policyRange)) out.push(parseJsonBytes(bytes) as PolicyRecord);
  return out;
}

async function storedPolicy(c: ReplicaCore, version: number): Promise<Policy> {
  const record = await policyRecord(c, version);
  if (record === undefined) throw new TesseraError('ERR_STORE_CORRUPT', `policy version ${version} is in use but its record is missing`);
  const policy = parsePolicy(record.text, `stored policy v${version}`);
  if (policyHash(policy) !== record.hash) throw new TesseraError('ERR_STORE_CORRUPT', `stored policy version ${version} does not match its content hash`);
  return policy;
}

/**
 * Loads the enforced and shadow versions at open; a newer `given` (the config's, with its signature when it
 * has one) is installed.
 */
export async function openGovernance(c: ReplicaCore, given: Policy | undefined, givenSignature?: unknown): Promise<void> {
  const stateBytes = await c.storage.get(policyStateKey);
  const state = stateBytes === undefined ? { enforce: null, shadow: null } : (parseJsonBytes(stateBytes) as PolicyState);
  if (state.enforce !== null) {
    c.enforced = await storedPolicy(c, state.enforce.version);
    c.enforcedSignature = (await policyRecord(c, state.enforce.version))?.signature ?? null;
  }
  if (state.shadow !== null) c.shadowed = await storedPolicy(c, state.shadow.version);
  if (state.judging !== undefined && c.enforced !== null) {
    const previous = state.judging.previous === null ? null : await storedPolicy(c, state.judging.previous);
    await reevaluate(c, previous, c.enforced, false);
    await c.commit([{ type: 'put', key: policyStateKey, value: jsonBytes({ enforce: state.enforce, shadow: state.shadow }) }]);
  }
  // A newer version already stored (distributed through the cluster) stays; an older one given is ignored.
  if (given !== undefined && (c.enforced === null || given.version >= c.enforced.version)) await installPolicy(c, given, 'enforce', 'config', givenSignature);
}

/**
 * The signature a version needs before it is stored: none when the replica trusts every version, or when it
 * is the config's (the daemon checked its file); else one by an operator key for this cluster, for this
 * version and content, and a version the enforced one may be followed by. Returns its text form to store.
 */
function checkedSignature(c: ReplicaCore, policy: Policy, mode: PolicyMode, source: string, signature: unknown): string | undefined {
  const trust = c.policyTrust;
  if (trust === null || source === 'config') {
    if (signature === undefined || signature === null) return undefined;
    return formatPolicySignature(parsePolicySignature(signature));
  }
  const { signature: parsed } = verifyPolicySignature(policy, signature, trust.keys, trust.cluster);
  if (mode === 'enforce') checkPolicySuccession(c.enforced === null ? null : { version: c.enforced.version, hash: policyHash(c.enforced) }, parsed);
  return formatPolicySignature(parsed);
}

/**
 * Stores a policy version and puts it to use (see `Replica.installPolicy`). Installs run one at a time, in
 * call order: interleaved, a slower older version would be checked against the state before a newer one.
 */
export function installPolicy(c: ReplicaCore, policy: Policy, mode: PolicyMode, source: string, signature?: unknown): Promise<PolicyReport | null> {
  const run = c.policyInstalls.then(() => installNow(c, policy, mode, source, signature));
  c.policyInstalls = run.catch(() => undefined);
  return run;
}

async function installNow(c: ReplicaCore, policy: Policy, mode: PolicyMode, source: string, signature: unknown): Promise<PolicyReport | null> {
  c.checkOpen();
  if (mode !== 'enforce' && mode !== 'shadow')
    throw new TesseraError('ERR_OPTION_INVALID', `installPolicy: mode must be "enforce" or "shadow", got ${JSON.stringify(mode)}`);
  const hash = policyHash(policy);
  const stored = await policyRecord(c, policy.version);
  if (stored !== undefined && stored.hash !== hash) {
    throw new TesseraError(
      'ERR_POLICY_CONFLICT',
      `policy version ${policy.version} is already stored with content hash ${stored.hash.slice(0, 12)}…, not ${hash.slice(0, 12)}…: versions are immutable, so give the changed policy a higher version`,
    );
  }
  const current = mode === 'enforce' ? c.enforced : c.shadowed;
  if (current !== null && current.version === policy.version) return null;
  if (c.enforced !== null && policy.version < c.enforced.version) {
    throw new TesseraError('ERR_POLICY_CONFLICT', `policy version ${policy.version} is older than the enforced version ${c.enforced.version}`);
  }
  // The enforced version is not tried in shadow mode again (a repeated apply shadows it first): nothing to do.
  if (c.enforced !== null && policy.version === c.enforced.version) return null;
  // A version stored earlier (in shadow mode) keeps the signature it came with.
  const signed = checkedSignature(c, policy, mode, source, signature ?? stored?.signature);
  const ops: BatchOp[] = [];
  if (stored === undefined) {
    const record: PolicyRecord = {
      version: policy.version,
      hash,
      storedAtMs: c.wallNow(),
      source,
      text: policy.text,
      ...(signed === undefined ? {} : { signature: signed }),
    };
    ops.push({ type: 'put', key: policyKey(policy.version), value: jsonBytes(record) });
    ops.push(...c.auditOps('policy-stored', { version: policy.version, hash, source }));
  }
  const stamp = (p: Policy | null) => (p === null ? null : { version: p.version, hash: policyHash(p) });
  const enforce = mode === 'enforce' ? policy : c.enforced;
  const shadow = mode === 'shadow' ? policy : c.shadowed !== null && c.shadowed.version > policy.version ? c.shadowed : null;
  const state: PolicyState = { enforce: stamp(enforce), shadow: stamp(shadow) };
  const judging: PolicyState = mode === 'enforce' ? { ...state, judging: { previous: c.enforced?.version ?? null } } : state;
  ops.push({ type: 'put', key: policyStateKey, value: jsonBytes(judging) });
  ops.push(...c.auditOps('policy-activated', { version: policy.version, hash, mode, previous: c.enforced?.version ?? null, source }));
  await c.commit(ops);
  const previous = c.enforced;
  c.enforced = enforce;
  c.shadowed = shadow;
  if (mode === 'enforce') c.enforcedSignature = signed ?? null;
  // Links judge what they send by the enforced policy: they hear of it in the same turn it changes.
  if (mode === 'enforce') c.events.emit('policy', policy.version);
  if (mode === 'shadow') return null;
  const report = await reevaluate(c, previous, policy, false);
  await c.commit([{ type: 'put', key: policyStateKey, value: jsonBytes(state) }]);
  return report;
}

/** A pending handover as stored. */
interface HandoverRecord {
  readonly seq: number;
  readonly regions: readonly string[];
  /** Regions that refused what was handed to them (the plan must change before the copy may go). */
  readonly refusedBy?: readonly string[];
}

/**
 * The record of a pending handover: purge once `regions` acknowledged what this replica logged so far. A new
 * plan (the facts or the policy changed) replaces it, refusals included.
 */
export function handoverOp(c: ReplicaCore, dataset: string, key: string, regions: readonly string[]): BatchOp {
  const record: HandoverRecord = { seq: c.seqLast, regions: [...regions].sort() };
  return { type: 'put', key: handoverKey(dataset, key), value: jsonBytes(record) };
}

/**
 * A peer in `region` refused entries `seqs` of this replica's log. A refused entry is acknowledged but not held
 * there: a handover of its document to that region is not complete, whatever the cursor says, until a new plan
 * (the facts the refusal leads to) replaces the record.
 */
export async function noteRefused(c: ReplicaCore, region: string, seqs: readonly number[]): Promise<void> {
  c.checkOpen();
  const ops: BatchOp[] = [];
  const seen = new Set<string>();
  for (const seq of seqs) {
    const bytes = await c.storage.get(logKey(seq));
    if (bytes === undefined) continue;
    const entry = decodeLogEntry(seq, bytes);
    const id = handoverKey(entry.dataset, entry.key);
    if (seen.has(id)) continue;
    seen.add(id);
    const stored = await c.storage.get(id);
    if (stored === undefined) continue;
    const record = parseJsonBytes(stored) as HandoverRecord;
    if (!record.regions.includes(region) || (record.refusedBy ?? []).includes(region)) continue;
    ops.push({ type: 'put', key: id, value: jsonBytes({ ...record, refusedBy: [...(record.refusedBy ?? []), region].sort() }) });
  }
  if (ops.length > 0) await c.commit(ops);
}

/** The regions the cluster names (the policy's, else the configured nodes'). */
function everywhere(c: ReplicaCore, policy: Policy): string[] {
  return [...new Set([...policy.regions.keys(), ...c.nodeRegions.values()])].sort();
}

/**
 * Judges every stored document under `next` against `previous` (null: everywhere allowed). Unless `dryRun`,
 * every holder sends its copy to the regions `next` opens for it, and a region that may no longer hold a
 * document hands it over to the regions that may (purging at once when none may).
 */
export async function reevaluate(c: ReplicaCore, previous: Policy | null, next: Policy, dryRun: boolean): Promise<PolicyReport> {
  const datasets: Record<string, { held: number; purge: number; start: Record<string, number> }> = {};
  let documents = 0;
  let after: string | null = null;
  const all = everywhere(c, next);
  for (;;) {
    const page: Array<[string, Uint8Array]> = [];
    for await (const item of c.storage.entries({
      ...(after === null ? { gte: allDocsRange.gte } : { gt: after }),
      lt: allDocsRange.lt,
      limit: policyScanStepMax,
    }))
      page.push(item);
    if (page.length === 0) break;
    after = page[page.length - 1]![0];
    const erase: Array<{ dataset: string; key: string }> = [];
    const work: Array<{ dataset: string; key: string; doc: DocState; bytes: Uint8Array; plan: ReturnType<typeof planPolicy> }> = [];
    for (const [stored, bytes] of page) {
      const { dataset, key } = parseDocKey(stored);
      let doc: DocState;
      try {
        doc = decodeDoc(bytes, `${dataset}/${key}`);
      } catch {
        continue;
      }
      documents++;
      const facts = docFacts(dataset, key, doc);
      const plan = planPolicy(previous, next, c.region, facts, all);
      const counts = (datasets[dataset] ??= { held: 0, purge: 0, start: {} });
      counts.held++;
      // Counted once over the cluster (by the first region that held it), so that per-region plans add up.
      if (plan.stateTo.length > 0 && countingRegion(plan.holdersBefore, plan.holders) === c.region) {
        for (const region of plan.stateTo) counts.start[region] = (counts.start[region] ?? 0) + 1;
      }
      if (!plan.keep) counts.purge++;
      if (dryRun) continue;
      if (!plan.keep && plan.handoverTo.length === 0) erase.push({ dataset, key });
      else work.push({ dataset, key, doc, bytes, plan });
    }
    if (dryRun) continue;
    // From here to the commit nothing awaits: sequence numbers are taken in the turn their batch is queued.
    const ops: BatchOp[] = [];
    const hlc = c.now();
    for (const { dataset, key, doc, bytes, plan } of work) {
      ops.push(...fanoutOps(c, dataset, key, hlc, bytes, encodeDoc(docHead(doc)), plan.stateTo, plan.purgeTo));
      if (!plan.keep) ops.push(handoverOp(c, dataset, key, plan.handoverTo));
    }
    const last = c.seqLast;
    if (ops.length > 0) {
      await c.commit(ops);
      c.committed(last);
      // No document changed, but the log grew: links have entries to send.
      c.events.emit('appended', last);
    }
    await purgeDocs(c, erase, () => ({ reason: 'policy', version: next.version }));
  }
  return { version: next.version, region: c.region, documents, datasets };
}

/**
 * The region that counts a document a new policy opens, in a plan: the first (by name) of the regions that
 * held it before and still may, or of those that held it before when none still may — one per cluster, so
 * per-region plans add up.
 */
function countingRegion(before: readonly string[], after: readonly string[]): string | undefined {
  const staying = before.filter((region) => after.includes(region));
  return [...(staying.length > 0 ? staying : before)].sort()[0];
}

/** May this region hold the document with these facts under the enforced policy (everything without one)? */
function mayHoldHere(c: ReplicaCore, facts: DocFacts): boolean {
  return c.enforced === null || holdersOf(c.enforced, facts).includes(c.region);
}

/**
 * Offers again what `region` refused of the copies this region hands over: a refusal holds a handover only
 * until the facts or the policy that caused it change — here, when the link to that region opens or this node
 * offers it a newer policy version. Each such copy's whole state goes to `region` again, and its handover
 * waits for that entry instead of the refused one (a new refusal records itself again). Returns how many.
 */
export async function reofferRefused(c: ReplicaCore, region: string): Promise<number> {
  c.checkOpen();
  const stuck: Array<{ stored: string; record: HandoverRecord; dataset: string; key: string; doc: DocState }> = [];
  for await (const [stored, bytes] of c.storage.entries({ ...handoverRange, limit: policyScanStepMax })) {
    const record = parseJsonBytes(bytes) as HandoverRecord;
    if (!(record.refusedBy ?? []).includes(region)) continue;
    const { dataset, key } = parseHandoverKey(stored);
    const doc = await c.committedState(dataset, key);
    if (doc !== null) stuck.push({ stored, record, dataset, key, doc });
  }
  if (stuck.length === 0) return 0;
  // From here to the commit nothing awaits: sequence numbers are taken in the turn their batch is queued.
  const ops: BatchOp[] = [];
  const hlc = c.now();
  for (const { stored, record, dataset, key, doc } of stuck) {
    ops.push(...fanoutOps(c, dataset, key, hlc, encodeDoc(doc), encodeDoc(docHead(doc)), [region], []));
    const refusedBy = (record.refusedBy ?? []).filter((other) => other !== region);
    const next: HandoverRecord = { seq: c.seqLast, regions: record.regions, ...(refusedBy.length === 0 ? {} : { refusedBy }) };
    ops.push({ type: 'put', key: stored, value: jsonBytes(next) });
  }
  const last = c.seqLast;
  await c.commit(ops);
  c.committed(last);
  c.events.emit('appended', last);
  return stuck.length;
}

/**
 * Completes handovers: a copy this region must give up is purged once `acknowledged(region)` (the lowest
 * sequence number every node of that region acknowledged from this one) reaches its record's for every region
 * it names; it is cancelled when this region may hold the document again (its facts or the policy changed).
 * Returns how many copies were purged.
 */
export async function settleHandovers(c: ReplicaCore, acknowledged: (region: string) => number): Promise<number> {
  c.checkOpen();
  const ready: Array<{ dataset: string; key: string; stored: string }> = [];
  const cancelled: BatchOp[] = [];
  for await (const [stored, bytes] of c.storage.entries({ ...handoverRange, limit: policyScanStepMax })) {
    const { seq, regions, refusedBy } = parseJsonBytes(bytes) as HandoverRecord;
    const { dataset, key } = parseHandoverKey(stored);
    const state = await c.committedState(dataset, key);
    if (state !== null && mayHoldHere(c, docFacts(dataset, key, state))) {
      cancelled.push({ type: 'del', key: stored });
      continue;
    }
    if ((refusedBy ?? []).length === 0 && regions.every((region) => acknowledged(region) >= seq)) ready.push({ dataset, key, stored });
  }
  if (cancelled.length > 0) await c.commit(cancelled);
  await dropDeliveredNotices(c, acknowledged);
  if (ready.length === 0) return 0;
  return purgeDocs(c, ready, () => ({ reason: 'handover' }));
}

/**
 * Deletes the purge notices this region owed for documents it does not store once every region they name
 * acknowledged them (a later truncation would leave their keys and tags on disk for longer than needed).
 */
async function dropDeliveredNotices(c: ReplicaCore, acknowledged: (region: string) => number): Promise<void> {
  const ops: BatchOp[] = [];
  for await (const stored of c.storage.keys({ ...owedRange, limit: policyScanStepMax })) {
    const seq = parseOwedKey(stored);
    const bytes = seq > c.logFloorSeq ? await c.storage.get(logKey(seq)) : undefined;
    if (bytes !== undefined) {
      const entry = decodeLogEntry(seq, bytes);
      if ((entry.to ?? []).some((region) => acknowledged(region) < seq)) continue;
      ops.push({ type: 'del', key: logKey(seq) });
    }
    ops.push({ type: 'del', key: stored });
  }
  if (ops.length === 0) return;
  await c.commit(ops);
  const logKeys = ops
    .filter((op) => op.key.startsWith(logRange.gte))
    .map((op) => op.key)
    .sort();
  if (logKeys.length > 0) await c.storage.compact({ gte: logKeys[0]!, lt: `${logKeys[logKeys.length - 1]!}\u0000` });
}

/** Purge notices owed for documents this region does not store, not yet acknowledged by every region they name. */
export async function pendingNotices(c: ReplicaCore): Promise<number> {
  let count = 0;
  for await (const _key of c.storage.keys(owedRange)) count++;
  return count;
}

/** Documents kept here only until the regions they were handed to acknowledge them. */
export async function pendingHandovers(c: ReplicaCore): Promise<number> {
  let count = 0;
  for await (const _key of c.storage.keys(handoverRange)) count++;
  return count;
}

/**
 * Drops this region's copy of documents: their state, log entries (but the purge notices it owes), conflict
 * records and handover records, in
 * one batch, with an audit entry each, then compacts what held them. Returns how many.
 */
export async function purgeDocs<T extends { dataset: string; key: string }>(
  c: ReplicaCore,
  docs: readonly T[],
  details: (doc: T) => Record<string, unknown>,
): Promise<number> {
  if (docs.length === 0) return 0;
  const ids = new Set(docs.map((doc) => docKey(doc.dataset, doc.key)));
  const pinned = await c.pinAll(docs);
  try {
    const ops: BatchOp[] = [];
    const logKeys: string[] = [];
    for await (const [stored, bytes] of c.storage.entries({ gt: logKey(c.logFloorSeq), lt: logRange.lt })) {
      const entry = decodeLogEntry(parseLogKey(stored), bytes);
      // Purge notices stay: they carry facts (never a value) that regions they name are still owed; truncation
      // drops them once those regions acknowledged them.
      if (!ids.has(docKey(entry.dataset, entry.key))) continue;
      if (entry.kind === 'purge') ops.push({ type: 'put', key: owedKey(entry.seq), value: jsonBytes(1) });
      else logKeys.push(stored);
    }
    for (const stored of logKeys) ops.push({ type: 'del', key: stored });
    const markersNow = new Map<string, PurgeMarker>();
    for (const doc of docs) {
      const entry = pinned.get(docKey(doc.dataset, doc.key))!;
      // The state goes, and its context with it: remember (by digest, never the key) the highest counter of
      // this node's dots in it, so a later write here cannot issue a dot other regions already hold.
      const marker = markerOf(entry.state, c.node, c.markerOf(doc.dataset, doc.key));
      const digest = c.keyDigest(doc.dataset, doc.key);
      markersNow.set(digest, marker);
      ops.push({ type: 'put', key: floorKey(digest), value: jsonBytes(markerForm(marker)) });
      ops.push({ type: 'del', key: docKey(doc.dataset, doc.key) }, { type: 'del', key: docSecretKey(doc.dataset, doc.key) });
      ops.push({ type: 'del', key: handoverKey(doc.dataset, doc.key) });
      for await (const stored of c.storage.keys(conflictRange(doc.dataset, doc.key))) ops.push({ type: 'del', key: stored });
      ops.push(...c.auditOps('purge', { dataset: doc.dataset, doc: c.keyDigest(doc.dataset, doc.key), ...details(doc) }));
    }
    for (const entry of pinned.values()) {
      entry.state = null;
    }
    await c.commit(ops);
    for (const [digest, marker] of markersNow) c.markers.set(digest, marker);
    for (const entry of pinned.values()) {
      entry.committed = null;
    }
    for (const id of ids) c.conflicted.delete(id);
    for (const doc of docs) c.events.emit('purged', { dataset: doc.dataset, key: doc.key, reason: String(details(doc).reason ?? 'purge') });
    c.events.emit('facts');
    await compactAfterPurge(c, docs, logKeys);
    return docs.length;
  } finally {
    for (const entry of pinned.values()) c.unpin(entry);
  }
}

/**
 * A delete leaves the old bytes in the engine's files until compaction rewrites them: compact what the purge
 * touched. The ranges are whole datasets and sequence numbers, never document keys (LevelDB writes the bounds
 * of a manual compaction to its LOG file).
 */
async function compactAfterPurge(c: ReplicaCore, docs: ReadonlyArray<{ dataset: string }>, logKeys: readonly string[]): Promise<void> {
  for (const dataset of new Set(docs.map((doc) => doc.dataset))) {
    await c.storage.compact(docRange(dataset));
    await c.storage.compact(conflictRange(dataset));
  }
  if (logKeys.length > 0) await c.storage.compact({ gte: logKeys[0]!, lt: `${logKeys[logKeys.length - 1]!}\u0000` });
  await c.storage.compact(handoverRange);
}
