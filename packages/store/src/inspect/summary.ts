/** The summary of a data directory: per dataset documents, quarantined, conflicts; log, policies, audit. */
import { type DocState, type Hlc, TesseraError, decodeDoc, docExists, docTags, docFacts, quarantineHolds, quarantineTag } from '@tessera/core';
import {
  allDocsRange,
  auditHeadKey,
  conflictRange,
  hlcKey,
  logFloorKey,
  logKey,
  logRange,
  parseConflictKey,
  parseDocKey,
  policyRange,
  policyStateKey,
} from '../layout.js';
import { type StoreReader, type InspectSummary, summaryDatasetsMax, summaryScanRecordsDefault, summaryScanRecordsMax } from './types.js';
import { parseJson, checkCount, readStoreMeta, readInt, expectStoredInt, logHead, storedPolicy, readPolicyStamp } from './read.js';

/**
 * Counts per dataset (documents live and deleted, bytes, quarantined, conflict records), the policy in force,
 * the delta log's range and the audit log's length. Reads at most `scanMax` records of each kind.
 */
export async function inspectSummary(reader: StoreReader, options: { scanMax?: number } = {}): Promise<InspectSummary> {
  const scanMax = checkCount('summary: scanMax', options.scanMax ?? summaryScanRecordsDefault, 1, summaryScanRecordsMax);
  const meta = await readStoreMeta(reader, 'the data directory');
  const stateBytes = await reader.get(policyStateKey);
  const state = stateBytes === undefined ? {} : (parseJson(stateBytes, 'the policy state record') as { enforce?: unknown; shadow?: unknown });
  const enforced = readPolicyStamp(state.enforce);
  const policy = enforced === null ? null : await storedPolicy(reader, enforced.version);
  let complete = true;
  const datasets = new Map<
    string,
    { documents: number; live: number; deleted: number; bytes: number; quarantined: number; conflicts: number; corrupt: number }
  >();
  const countsOf = (dataset: string) => {
    let counts = datasets.get(dataset);
    if (counts === undefined) datasets.set(dataset, (counts = { documents: 0, live: 0, deleted: 0, bytes: 0, quarantined: 0, conflicts: 0, corrupt: 0 }));
    return counts;
  };
  let scanned = 0;
  for await (const [stored, bytes] of reader.iterator({ ...allDocsRange, limit: scanMax + 1 })) {
    if (++scanned > scanMax) {
      complete = false;
      break;
    }
    const { dataset, key } = parseDocKey(stored);
    const counts = countsOf(dataset);
    counts.documents++;
    counts.bytes += bytes.length;
    let doc: DocState;
    try {
      doc = decodeDoc(bytes, `${dataset}/${key}`);
    } catch {
      counts.corrupt++;
      continue;
    }
    if (!docExists(doc)) {
      counts.deleted++;
      continue;
    }
    counts.live++;
    if (policy !== null && docTags(doc).includes(quarantineTag) && quarantineHolds(policy, docFacts(dataset, key, doc))) counts.quarantined++;
  }
  scanned = 0;
  for await (const stored of reader.keys({ ...conflictRange(), limit: scanMax + 1 })) {
    if (++scanned > scanMax) {
      complete = false;
      break;
    }
    countsOf(parseConflictKey(stored).dataset).conflicts++;
  }
  const floor = await readInt(reader, logFloorKey, 'the stored log floor');
  const head = await logHead(reader);
  let entries = 0;
  for await (const _stored of reader.keys({ gt: logKey(floor), lt: logRange.lt, limit: scanMax + 1 })) {
    if (++entries > scanMax) {
      entries = scanMax;
      complete = false;
      break;
    }
  }
  let versionsStored = 0;
  for await (const _stored of reader.keys({ ...policyRange, limit: scanMax + 1 })) {
    if (++versionsStored > scanMax) {
      versionsStored = scanMax;
      complete = false;
      break;
    }
  }
  const auditBytes = await reader.get(auditHeadKey);
  const auditLength = auditBytes === undefined ? 0 : expectStoredInt((parseJson(auditBytes, 'the audit head') as { seq?: unknown }).seq, 'the audit head');
  const hlcBytes = await reader.get(hlcKey);
  let hlc: Hlc | null = null;
  if (hlcBytes !== undefined) {
    const stored = parseJson(hlcBytes, 'the stored clock');
    if (!Array.isArray(stored) || stored.length !== 2) throw new TesseraError('ERR_STORE_CORRUPT', 'the stored clock is not [ms, counter]');
    hlc = { ms: expectStoredInt(stored[0], 'the stored clock'), c: expectStoredInt(stored[1], 'the stored clock') };
  }
  const names = [...datasets.keys()].sort();
  return {
    node: meta.node,
    region: meta.region,
    format: meta.format,
    hlc,
    datasets: names.slice(0, summaryDatasetsMax).map((dataset) => ({ dataset, ...datasets.get(dataset)! })),
    datasetsOmitted: Math.max(0, names.length - summaryDatasetsMax),
    policy: { enforced, shadow: readPolicyStamp(state.shadow), versionsStored },
    log: { floor, head, entries },
    audit: { length: auditLength },
    scan: { recordsMax: scanMax, complete },
  };
}
