/**
 * Residency as pure plans: given a document's facts before and after a change, the policy and the region
 * asking, what may happen and what it sets in motion. The store carries plans out (writes, applies, policy
 * installs); the link protocol asks `mayShip` for every entry; the simulation's checker judges with the same
 * functions. Without a policy every region may hold everything and nothing is planned.
 *
 * Audiences. Every region that holds a copy serves the holders its own facts allow: the sender of an entry
 * served the holders of its facts, the receiver those of its own. When a change of facts (a merge, a tag, a
 * re-creation) or of policy moves the holders, the region that sees it first tells the regions that lacked an
 * audience's content (they get its whole state) and those that may hold a copy but no longer may (they get a
 * purge notice that carries the facts, so that they can hand their own writes over before they purge).
 */
import { type Decision } from '../policy/policy.js';
import { type DocFacts } from '../policy/facts.js';
import { type Policy } from '../policy/policy.js';
import { holdersOf, quarantineHolds, regionsBoth, regionsMinus, regionsUnion, sameFacts } from './facts.js';

/** An audit event a plan asks for. */
export type ResidencyAudit = 'quarantine-hold' | 'quarantine-release';

/** What follows a change of a document's facts at one region. */
export interface Fanout {
  /** Regions that get the document's whole state: they may hold it now and lack content of an audience. */
  readonly stateTo: readonly string[];
  /** Regions that may hold a copy they no longer may keep: they get a purge notice with the facts. */
  readonly purgeTo: readonly string[];
  readonly audit: readonly ResidencyAudit[];
}

const allowEverything: Decision = Object.freeze({ allow: true, reason: 'placement' });
const nothing: Fanout = Object.freeze({ stateTo: [], purgeTo: [], audit: [] });

function quarantineAudit(policy: Policy, before: DocFacts | null, after: DocFacts): ResidencyAudit[] {
  const heldBefore = before !== null && quarantineHolds(policy, before);
  const heldAfter = quarantineHolds(policy, after);
  if (heldAfter && !heldBefore) return ['quarantine-hold'];
  if (heldBefore && !heldAfter) return ['quarantine-release'];
  return [];
}

/** A local write: may it happen here, and what does it set in motion. */
export interface WritePlan extends Fanout {
  readonly allowed: boolean;
  /** The decision for this region after the write (names the reason of a refusal). */
  readonly decision: Decision;
  /** The regions that may hold the document after the write (a refusal names them). */
  readonly holders: readonly string[];
}

/**
 * A local write that changes the copy's facts from `before` (null: no copy here) to `after`. It is refused
 * unless this region may hold the document afterwards (a write whose document no region may hold is refused
 * that way too). The write's own entry reaches the holders of `after`; earlier content reaches the regions
 * it opens as a whole state; regions it shuts get a purge notice.
 */
export function planWrite(policy: Policy | null, region: string, before: DocFacts | null, after: DocFacts): WritePlan {
  if (policy === null) return { allowed: true, decision: allowEverything, holders: [], ...nothing };
  const decision = policy.decide(after, region);
  const holders = holdersOf(policy, after);
  if (!decision.allow) return { allowed: false, decision, holders, ...nothing };
  if (before === null) return { allowed: true, decision, holders, ...nothing, audit: quarantineAudit(policy, null, after) };
  if (sameFacts(before, after)) return { allowed: true, decision, holders, ...nothing };
  const was = holdersOf(policy, before);
  return {
    allowed: true,
    decision,
    holders,
    stateTo: regionsMinus(holders, was, region),
    purgeTo: regionsMinus(was, holders, region),
    audit: quarantineAudit(policy, before, after),
  };
}

/** The kinds of delta-log entries. */
export type EntryKind = 'change' | 'state' | 'purge';

/**
 * May an entry of a document go to `target`? `facts`: the sender's copy as it stands now (null: the sender no
 * longer holds one). A change or a state goes only where the copy may be held (a state only to the regions it
 * names); a purge notice only to a region it names that may indeed no longer hold the document.
 */
export function mayShip(policy: Policy | null, facts: DocFacts | null, kind: EntryKind, to: readonly string[], target: string): boolean {
  if (kind !== 'change' && !to.includes(target)) return false;
  if (policy === null) return kind !== 'purge' && facts !== null;
  if (kind === 'purge') return facts === null || !policy.mayHold(facts, target);
  return facts !== null && policy.mayHold(facts, target);
}

/** What a receiver does with the entries of one document from one peer. */
export interface ReceivePlan extends Fanout {
  /** This region may hold the document as the entries would leave it: apply them. */
  readonly accept: boolean;
  readonly decision: Decision;
  /**
   * The entries are refused, but the copy here takes the sender's facts (its head): it must go, and its own
   * writes go first to `handoverTo`.
   */
  readonly giveUp: boolean;
  /** The regions that may hold the document as merged: a copy that must go hands its writes to them. */
  readonly handoverTo: readonly string[];
}

/**
 * The entries of one document arrive from a region `from` with the sender's facts `incoming`; `local` are the
 * facts of the copy here (null: none), `merged` those of the copy the entries would leave. Audiences: the
 * sender served the holders of `incoming`, this region those of `local` (of `incoming` when it holds no copy:
 * it serves nobody yet). Regions that may hold the merged document and were not in both audiences lack
 * content; those in an audience that may not hold it have a copy to drop. A sender whose facts lag the
 * merged ones learns them: by the whole state when it may hold the document, by a purge notice otherwise.
 */
export function planReceive(policy: Policy | null, region: string, local: DocFacts | null, incoming: DocFacts, merged: DocFacts, from: string): ReceivePlan {
  if (policy === null) return { accept: true, decision: allowEverything, giveUp: false, handoverTo: [], ...nothing };
  const decision = policy.decide(merged, region);
  const holders = holdersOf(policy, merged);
  if (!decision.allow && local === null) return { accept: false, decision, giveUp: false, handoverTo: holders, ...nothing };
  const audienceIn = holdersOf(policy, incoming);
  const audienceHere = local === null ? audienceIn : holdersOf(policy, local);
  const stateTo = regionsMinus(holders, regionsBoth(audienceHere, audienceIn), region);
  if (!sameFacts(incoming, merged) && holders.includes(from) && from !== region && !stateTo.includes(from)) stateTo.push(from);
  const purgeTo = regionsMinus(regionsUnion(audienceHere, audienceIn), holders, region);
  if (!sameFacts(incoming, merged) && !holders.includes(from) && from !== region && !purgeTo.includes(from)) purgeTo.push(from);
  purgeTo.sort();
  return {
    accept: decision.allow,
    decision,
    giveUp: !decision.allow,
    handoverTo: holders,
    stateTo: stateTo.sort(),
    purgeTo,
    audit: quarantineAudit(policy, local, merged),
  };
}

/** What a region does with its copy of a document when the enforced policy changes. */
export interface PolicyPlan extends Fanout {
  /** This region may keep the document under the new policy. */
  readonly keep: boolean;
  /** Regions that may hold it under the new policy: a region that may not hands its writes to them first. */
  readonly handoverTo: readonly string[];
  /** The regions that may hold it under the new policy, and under the previous one (null: everywhere). */
  readonly holders: readonly string[];
  readonly holdersBefore: readonly string[];
}

/**
 * A new policy `next` replaces `previous` (null: every region held everything) for a copy with `facts`. A
 * region that may no longer hold it hands its writes to the new holders and purges; every holder sends its
 * whole state to the regions the policy opens (copies may differ, and joins make duplicates harmless) and a
 * purge notice with its facts to the regions it shuts: every region re-judges its own copy, but a copy whose
 * facts lag (a concurrent creation it never merged, a tag it never saw) would be judged by the wrong facts —
 * the notice brings them the facts this holder has.
 */
export function planPolicy(previous: Policy | null, next: Policy, region: string, facts: DocFacts, everywhere: readonly string[]): PolicyPlan {
  const holdersBefore = previous === null ? [...everywhere].sort() : holdersOf(previous, facts);
  const holders = holdersOf(next, facts);
  const keep = holders.includes(region);
  return {
    keep,
    handoverTo: holders,
    holders,
    holdersBefore,
    stateTo: regionsMinus(holders, holdersBefore, region),
    purgeTo: keep ? regionsMinus(holdersBefore, holders, region) : [],
    audit: [],
  };
}
