/**
 * What the history allows at a moment: which policy versions a node could enforce, which facts (origin,
 * tags) a copy of a document could have, and whether a write could lawfully have been erased because some
 * version in force after it left its document no region at all.
 */
import { type History, type Op } from './history.js';
import { factCandidates, mayHaveHappened } from './facts.js';
import { type ChaosRegion, docKeyOf } from './model.js';
import { type PlacementFacts, type PolicyShape, basePolicyShape, holders } from './policy.js';

/**
 * A node may still decide with an older version this long after a sample showed it a newer one was in force:
 * a batch is judged a moment before its bytes are written, and a SIGSTOP (at most 3 s) can fall in between.
 */
export const versionGraceMs = 5_000;

export class Judge {
  private readonly byDoc = new Map<string, Op[]>();
  /** Installed versions (acknowledged or unknown), with when the first install was invoked. */
  private readonly installs = new Map<number, number>([[1, -Infinity]]);
  private readonly shapes: ReadonlyMap<number, PolicyShape>;
  private readonly erasures = new Map<number, string | null>();

  constructor(
    private readonly history: History,
    readonly regionOfClient: (client: number) => ChaosRegion,
  ) {
    for (const op of history.ops) {
      if (op.kind === 'policy') {
        const version = op.args.version as number;
        if (mayHaveHappened(op)) this.installs.set(version, Math.min(this.installs.get(version) ?? Infinity, op.invokeMs));
        continue;
      }
      if (op.kind === 'read-token') continue;
      const id = docKeyOf(op.dataset, op.key);
      this.byDoc.set(id, [...(this.byDoc.get(id) ?? []), op]);
    }
    this.shapes = history.policies.size > 0 ? history.policies : new Map([[1, basePolicyShape()]]);
  }

  /** The writes of a document, in invocation order. */
  opsOf(dataset: string, key: string): readonly Op[] {
    return this.byDoc.get(docKeyOf(dataset, key)) ?? [];
  }

  /** Every document some operation wrote, as `dataset/key`. */
  documents(): string[] {
    return [...this.byDoc.keys()];
  }

  hasShape(version: number): boolean {
    return this.shapes.has(version);
  }

  shape(version: number): PolicyShape {
    const shape = this.shapes.get(version);
    if (shape === undefined) throw new Error(`policy v${version} is not in the history`);
    return shape;
  }

  /**
   * The versions `node` may have enforced at some moment in [fromMs, toMs]: at least the newest a sample had
   * shown in force `versionGraceMs` before `fromMs`; at most the one the first sample asked for after `toMs`
   * showed, and the newest whose install was invoked by `toMs`.
   */
  versionsOf(node: string, fromMs: number, toMs: number): number[] {
    let lower = 1;
    // Versions never go back (they are stored): a sample asked for after `toMs` bounds the version from above.
    let upper = Infinity;
    for (const sample of this.history.samples) {
      if (sample.node !== node || sample.policyVersion === null) continue;
      if (sample.answeredAtMs <= fromMs - versionGraceMs) lower = Math.max(lower, sample.policyVersion);
      if (sample.atMs >= toMs) upper = Math.min(upper, sample.policyVersion);
    }
    const out = [...this.installs].filter(([version, invokeMs]) => version >= lower && version <= upper && invokeMs <= toMs).map(([version]) => version);
    // A node never goes back: the version a sample showed stays possible even if its install is not in the history.
    return out.length > 0 ? out.sort((a, b) => a - b) : [lower];
  }

  /** The facts a copy of the document could have had at `atMs`, holding `write` when given. */
  factsAt(dataset: string, key: string, atMs: number, write: Op | null): PlacementFacts[] {
    return factCandidates(dataset, this.opsOf(dataset, key), atMs, write);
  }

  /**
   * Why `write` may have been erased lawfully — a policy version that every node had not yet left behind when
   * the write was made, under which some fact combination of its document leaves it no region — or null.
   */
  erasure(write: Op): string | null {
    if (!this.erasures.has(write.id)) this.erasures.set(write.id, this.findErasure(write));
    return this.erasures.get(write.id)!;
  }

  private findErasure(write: Op): string | null {
    const floor = Math.min(...(this.history.samples.length === 0 ? [1] : this.nodes().map((node) => this.lastVersionSeen(node, write.invokeMs))));
    const facts = this.factsAt(write.dataset, write.key, Infinity, null);
    for (const [version] of [...this.installs].sort((a, b) => a[0] - b[0])) {
      if (version < floor || !this.shapes.has(version)) continue;
      const shape = this.shape(version);
      const homeless = facts.find((f) => holders(shape, f).length === 0);
      if (homeless !== undefined) return `under v${version} no region may hold it with origin ${homeless.origin} and tags [${homeless.tags.join(', ')}]`;
    }
    return null;
  }

  /** Facts in a message: origins and tag sets, collapsed. */
  describeFacts(facts: readonly PlacementFacts[]): string {
    const origins = [...new Set(facts.map((f) => f.origin))];
    const tagSets = [...new Set(facts.map((f) => `[${f.tags.join(', ')}]`))];
    return `origin ${origins.join(' or ')}, tags ${tagSets.slice(0, 6).join(' or ')}${tagSets.length > 6 ? ` or ${tagSets.length - 6} more` : ''}`;
  }

  private nodes(): string[] {
    return [...new Set(this.history.samples.map((sample) => sample.node))];
  }

  private lastVersionSeen(node: string, atMs: number): number {
    let version = 1;
    for (const sample of this.history.samples)
      if (sample.node === node && sample.answeredAtMs <= atMs && sample.policyVersion !== null) version = Math.max(version, sample.policyVersion);
    return version;
  }
}
