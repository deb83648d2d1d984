/**
 * Residency on the wire and on disk. On the wire, each sighting of a write's marker delivered to region R from
 * node S is judged against every policy version S could have enforced when it wrote the bytes and every fact
 * combination a copy holding that write could have had by then: if none lets R hold the document, S broke the
 * sender's rule (DESIGN §8.3). On disk, once the copies have converged, a region's data files may hold no
 * marker of a document that the final facts and the final policy forbid it.
 */
import { type CheckInput, type Report } from './checker.js';
import { type Op } from './history.js';
import { type Judge } from './judge.js';
import { type ChaosRegion, docKeyOf, parseMarker } from './model.js';
import { holders, mayHold } from './policy.js';
import { regionOfNode } from './schedule.js';

/** The write each marker belongs to: client and operation count → op. */
export function markerIndex(ops: readonly Op[]): Map<string, Op> {
  const out = new Map<string, Op>();
  for (const op of ops) if (typeof op.args.marker === 'string') out.set(op.args.marker, op);
  return out;
}

export function checkWire({ history, wire }: CheckInput, judge: Judge, report: Report): void {
  const writes = markerIndex(history.ops);
  for (const event of wire) {
    report.count('residency: marker sightings on the wire judged');
    const op = writes.get(event.marker);
    if (op === undefined) {
      // Not a marker of this run (a parse of unrelated bytes, or a damaged value): worth knowing, not a residency fact.
      if (parseMarker(event.marker) !== null) report.note(`the taps saw ${event.marker}, which no write of this run carried`);
      continue;
    }
    // The bytes cannot have been written before their write was asked for.
    const atMs = Math.max(event.sentAtMs, op.invokeMs);
    const versions = judge.versionsOf(event.from, atMs, atMs);
    const facts = judge.factsAt(op.dataset, op.key, atMs, op);
    if (versions.some((version) => facts.some((f) => mayHold(judge.shape(version), f, event.region)))) continue;
    const lowest = judge.shape(versions[0]!);
    const where = [...new Set(facts.map((f) => holders(lowest, f).join('+') || 'nowhere'))].join(' or ');
    report.fail(
      `residency: the value of ${op.dataset}/${op.key} written by op ${op.id} (${op.kind} at ${op.node}, ${(op.invokeMs / 1000).toFixed(2)} s) reached ${event.region} from ${event.from} over ${event.link} ` +
        `(sent at ${(event.sentAtMs / 1000).toFixed(2)} s); ${event.from} could enforce v${versions.join(', v')} and the document could have ${judge.describeFacts(facts)}: ` +
        `under v${versions[0]} it may live in ${where} only`,
    );
  }
}

/** `forbidden`: per document, the regions the final facts and policy forbid (from checker-docs.ts). */
export function checkDisks({ history, disks, nodeOf }: CheckInput, forbidden: ReadonlyMap<string, ReadonlySet<ChaosRegion>>, report: Report): void {
  const writes = markerIndex(history.ops);
  for (const [node, markers] of disks) {
    const region = regionOfNode(node);
    if (nodeOf[region] !== node) continue;
    for (const [marker, file] of markers) {
      report.count('residency: markers on disk judged');
      const op = writes.get(marker);
      if (op === undefined) continue;
      const id = docKeyOf(op.dataset, op.key);
      if (forbidden.get(id)?.has(region) !== true) continue;
      report.fail(
        `residency: the value of ${id} written by op ${op.id} (${marker}) is in ${region}'s data files (${file}), and the final facts and policy forbid ${region} that document`,
      );
    }
  }
}
