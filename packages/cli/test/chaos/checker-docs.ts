/**
 * The final state, document by document. The facts that decide placement come from the copies (they must
 * agree wherever the document is held) or, when no node holds it, from what its writes allow; with the final
 * policy they say which regions must hold it, which may, and which may not. Then: no forbidden region lists
 * or serves it; the copies that must exist are equal; each holds every acknowledged write (unless a policy
 * version left the document no region, which erases it lawfully: a note); and the value is one the writes allow.
 */
import { type CheckInput, type FinalDoc, type Report, contextHas } from './checker.js';
import { type ModelState, canonical, finalStates, mayHaveHappened, tagsAdded } from './facts.js';
import { type Op } from './history.js';
import { type Judge } from './judge.js';
import { type ChaosDataset, type ChaosRegion, type DocId, chaosDatasets, chaosRegions, docKeyOf, docOf, singleWriterFamilies } from './model.js';
import { type PlacementFacts, holders } from './policy.js';

const absent = Symbol('absent');

/** Checks every document; returns, per document, the regions the final facts and policy forbid (for the disk check). */
export function checkDocuments(input: CheckInput, judge: Judge, finalVersion: number, report: Report): Map<string, Set<ChaosRegion>> {
  const { final, nodeOf } = input;
  const shape = judge.shape(finalVersion);
  const forbiddenByDoc = new Map<string, Set<ChaosRegion>>();
  const universe = new Set(judge.documents());
  for (const lists of final.lists.values()) for (const [dataset, listed] of lists) for (const key of listed) universe.add(docKeyOf(dataset, key));

  for (const id of [...universe].sort()) {
    const slash = id.indexOf('/');
    const [dataset, key] = [id.slice(0, slash), id.slice(slash + 1)];
    const doc = docOf(dataset, key);
    const ops = judge.opsOf(dataset, key);
    if (doc === null || ops.length === 0) {
      report.fail(`residency: ${id} is listed but no client wrote it`);
      continue;
    }
    const answers = new Map(chaosRegions.map((region) => [region, final.docs.get(nodeOf[region])?.get(id)]));
    // Copies that share no dot never exchanged anything: the same key created in regions the policy keeps apart
    // (quarantine, pii, a home region). Each such lineage is a document of its own, checked on its own; the
    // writes on no copy are checked once, with the first.
    const lineages = lineagesOf(answers);
    if (lineages.length > 1) report.count('convergence: keys with separate lineages');
    const forbiddenAll: Array<Set<ChaosRegion>> = [];
    lineages.forEach((lineage, i) => {
      const others = new Set(lineages.flat().filter((region) => !lineage.includes(region)));
      const inLineage = (op: Op) => op.dot === null || op.dot === undefined || lineage.some((region) => contextHas(answers.get(region)?.context, op.dot!));
      const onNoCopy = (op: Op) =>
        op.dot !== null && op.dot !== undefined && !lineages.flat().some((region) => contextHas(answers.get(region)?.context, op.dot!));
      const mine = lineages.length === 1 ? ops : ops.filter((op) => inLineage(op) || (i === 0 && onNoCopy(op)));
      const seen = lineages.length === 1 ? answers : new Map([...answers].map(([region, answer]) => [region, others.has(region) ? otherLineage : answer]));
      const forbidden = checkLineage(input, judge, shape, { id, dataset, key, doc }, mine, seen, others, report);
      if (forbidden !== null) forbiddenAll.push(forbidden);
    });
    // The disk check: a region is forbidden a document's values when every lineage forbids it.
    if (forbiddenAll.length > 0) forbiddenByDoc.set(id, new Set(chaosRegions.filter((region) => forbiddenAll.every((set) => set.has(region)))));
  }
  return forbiddenByDoc;
}

/** What a region that holds another lineage of the key answers, for the checks of this one. */
const otherLineage: FinalDoc = { status: 409 };

/** The regions holding a copy, grouped by lineage: copies sharing a dot are one document. */
export function lineagesOf(answers: ReadonlyMap<ChaosRegion, FinalDoc | undefined>): ChaosRegion[][] {
  const held = [...answers].filter(([, answer]) => answer?.status === 200 && answer.context !== undefined) as Array<[ChaosRegion, FinalDoc]>;
  const parent = held.map((_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i]!)));
  for (let i = 0; i < held.length; i++) {
    for (let j = i + 1; j < held.length; j++) if (shareDot(held[i]![1].context!, held[j]![1].context!)) parent[find(i)] = find(j);
  }
  const groups = new Map<number, ChaosRegion[]>();
  const dotless: ChaosRegion[] = [];
  held.forEach(([region, answer], i) => {
    // A copy without a single dot shares nothing with anyone, yet was never a creation of its own: it is
    // judged with the first lineage (as a copy that lacks its writes).
    if (!hasDots(answer.context!)) dotless.push(region);
    else groups.set(find(i), [...(groups.get(find(i)) ?? []), region]);
  });
  const lineages = [...groups.values()];
  if (lineages.length === 0) return [dotless];
  lineages[0]!.push(...dotless);
  return lineages;
}

function hasDots(context: NonNullable<FinalDoc['context']>): boolean {
  return context.cloud.length > 0 || context.vector.some(([, counter]) => counter >= 1);
}

/** Whether two causal contexts (a vector and a cloud of dots) have a dot in common. */
function shareDot(a: NonNullable<FinalDoc['context']>, b: NonNullable<FinalDoc['context']>): boolean {
  const vector = (context: NonNullable<FinalDoc['context']>) => new Map(context.vector.map(([node, counter]) => [node, counter]));
  const [va, vb] = [vector(a), vector(b)];
  for (const [node, counter] of va) if (counter >= 1 && (vb.get(node) ?? 0) >= 1) return true;
  if (a.cloud.some((dot) => contextHas(b, dot))) return true;
  return b.cloud.some((dot) => contextHas(a, dot));
}

/**
 * One lineage of a document (all of it, when its copies share dots): `answers` shows the regions holding
 * another lineage (`others`) as holding nothing of this one. Returns the regions its facts forbid.
 */
function checkLineage(
  input: CheckInput,
  judge: Judge,
  shape: ReturnType<Judge['shape']>,
  doc0: { id: string; dataset: string; key: string; doc: DocId },
  ops: readonly Op[],
  answers: ReadonlyMap<ChaosRegion, FinalDoc | undefined>,
  others: ReadonlySet<ChaosRegion>,
  report: Report,
): Set<ChaosRegion> | null {
  const { final, nodeOf } = input;
  const { id, dataset, key, doc } = doc0;
  const facts = finalFacts(doc, ops, answers, judge, report);
  if (facts.length === 0) return null; // nothing that may have happened created it
  const holderSets = facts.map((f) => holders(shape, f));
  const must = chaosRegions.filter((region) => holderSets.every((set) => set.includes(region)));
  const forbidden = new Set(chaosRegions.filter((region) => holderSets.every((set) => !set.includes(region))));

  // Views: no region that may not hold it lists or serves it.
  for (const region of forbidden) {
    report.count('residency: forbidden copies checked');
    if (!others.has(region) && final.lists.get(nodeOf[region])?.get(dataset)?.includes(key) === true)
      report.fail(`residency: ${region} lists ${id}, which it may not hold (${describe(facts)}, v${shape.version})`);
    if (answers.get(region)?.status === 200)
      report.fail(`residency: ${region} answers 200 for ${id}, which it may not hold (${describe(facts)}, v${shape.version})`);
  }

  // Copies that must exist are equal, facts and all.
  report.count('convergence: documents');
  const views = must.map((region) => view(answers.get(region)));
  if (new Set(views).size > 1)
    report.fail(`divergence: ${id} differs between ${must.join(', ')}: ${must.map((region, i) => `${region}: ${views[i]!.slice(0, 300)}`).join(' | ')}`);

  // Every acknowledged write is on every copy that must exist, unless the document was lawfully erased.
  for (const op of ops) {
    if (op.outcome !== 'ok' || op.dot === null || op.dot === undefined) continue;
    if (must.length === 0) {
      // No region must hold it (the copies disagree on its facts, or none may): the write must still be somewhere.
      report.count('lost writes: acknowledged dots checked');
      const somewhere = chaosRegions.some((region) => {
        const answer = answers.get(region);
        return answer?.status === 200
          ? contextHas(answer.context, op.dot!)
          : !forbidden.has(region) && final.tokenReads.get(nodeOf[region])?.get(op.token!) === 404;
      });
      const erasure = somewhere ? null : judge.erasure(op);
      if (!somewhere && erasure !== null) report.note(`erased: ${id}'s acknowledged write ${op.dot.join(':')} (op ${op.id}) is on no copy; ${erasure}`);
      if (!somewhere && erasure === null)
        report.fail(
          `lost write: ${id}'s acknowledged write ${op.dot.join(':')} (op ${op.id}, ${op.kind} at ${op.node}, ${(op.invokeMs / 1000).toFixed(2)} s) is on no copy`,
        );
    }
    for (const region of must) {
      report.count('lost writes: acknowledged dots checked');
      const answer = answers.get(region);
      const held = answer?.status === 200 ? contextHas(answer.context, op.dot) : final.tokenReads.get(nodeOf[region])?.get(op.token!) === 404;
      if (held) continue;
      const erasure = judge.erasure(op);
      if (erasure !== null) {
        report.note(`erased: ${id}'s acknowledged write ${op.dot.join(':')} (op ${op.id}) is not on ${region}; ${erasure}`);
        continue;
      }
      report.fail(
        answer?.status === 200
          ? `lost write: ${region}'s ${id} lacks the acknowledged write ${op.dot.join(':')} (op ${op.id}, ${op.kind} at ${op.node}, ${(op.invokeMs / 1000).toFixed(2)} s)`
          : `lost write: ${region} answers ${answer?.status} for ${id} and ${final.tokenReads.get(nodeOf[region])?.get(op.token!) ?? 'nothing'} for the token of its acknowledged write ${op.dot.join(':')} (op ${op.id}, ${op.kind} at ${op.node}, ${(op.invokeMs / 1000).toFixed(2)} s)`,
      );
    }
  }

  // Values: what the writes allow, on every copy that must exist.
  must.forEach((region, i) => checkValue(doc, ops, answers.get(region), region, judge, report, i === 0));
  return forbidden;
}

/**
 * The facts that decide where the document may live: for a single writer's document, what its writes allow
 * (they decide its tags, and the copies must agree with them: a copy that kept a tag its writer removed is a
 * stale copy, not a reason to hold it); otherwise the copies' (which must agree), else what the writes allow.
 * Also checks that the copies agree and that the origin is a region that created the document.
 */
function finalFacts(doc: DocId, ops: readonly Op[], answers: ReadonlyMap<ChaosRegion, FinalDoc | undefined>, judge: Judge, report: Report): PlacementFacts[] {
  const id = docKeyOf(doc.dataset, doc.key);
  const creators = doc.owner !== null ? [judge.regionOfClient(doc.owner)] : [...new Set(ops.filter(mayHaveHappened).map((op) => op.region))];
  const held = [...answers].filter(([, answer]) => answer?.status === 200) as Array<[ChaosRegion, FinalDoc]>;
  if (held.length > 0) {
    const seen = new Map<string, PlacementFacts>();
    for (const [, answer] of held) {
      const facts = { dataset: doc.dataset, origin: answer.origin ?? '(none)', tags: [...(answer.tags ?? [])].sort() };
      seen.set(canonical(facts), facts);
    }
    report.count('convergence: placement facts compared', held.length);
    if (seen.size > 1)
      report.fail(
        `divergence: the copies of ${id} disagree on its placement facts: ${held.map(([region, answer]) => `${region}: origin ${answer.origin ?? '(none)'}, tags [${(answer.tags ?? []).join(', ')}], type ${answer.type}`).join(' | ')}`,
      );
    for (const facts of seen.values()) {
      if (!(creators as string[]).includes(facts.origin)) report.fail(`facts: ${id} has origin ${facts.origin}, but only ${creators.join(', ')} wrote it`);
    }
    if (!singleWriterFamilies.has(doc.family)) return [...seen.values()];
  }
  if (singleWriterFamilies.has(doc.family)) {
    const states = finalStates(ops, datasetType(doc.dataset)) ?? [];
    const seen = new Map<string, PlacementFacts>();
    for (const state of states) {
      const facts = { dataset: doc.dataset, origin: creators[0]!, tags: [...state.tags] };
      seen.set(canonical(facts), facts);
    }
    if (seen.size > 0) return [...seen.values()];
  }
  return held.length > 0
    ? [
        ...new Map(
          held.map(([, answer]) => {
            const facts = { dataset: doc.dataset, origin: answer.origin ?? '(none)', tags: [...(answer.tags ?? [])].sort() };
            return [canonical(facts), facts] as const;
          }),
        ).values(),
      ]
    : judge.factsAt(doc.dataset, doc.key, Infinity, null);
}

/** The type of the documents a dataset creates when a write names none. */
function datasetType(dataset: string): string {
  return chaosDatasets[dataset as ChaosDataset]?.type ?? 'map';
}

/** A copy, for comparing: status, or type, value, context, tags and origin. */
function view(answer: FinalDoc | undefined): string {
  if (answer === undefined) return 'unread';
  if (answer.status !== 200) return `status ${answer.status}`;
  return canonical({ type: answer.type, value: answer.value, context: answer.context, tags: answer.tags, origin: answer.origin });
}

function describe(facts: readonly PlacementFacts[]): string {
  return facts.map((f) => `origin ${f.origin}, tags [${f.tags.join(', ')}]`).join(' or ');
}

const show = (value: unknown): string => (value === absent ? '(absent)' : (JSON.stringify(value)?.slice(0, 200) ?? 'undefined'));

/** The value checks of one copy, by family. `first`: count the facts once per document, not once per copy. */
function checkValue(doc: DocId, ops: readonly Op[], answer: FinalDoc | undefined, region: ChaosRegion, judge: Judge, report: Report, first: boolean): void {
  const id = docKeyOf(doc.dataset, doc.key);
  const count = (what: string, n = 1) => first && report.count(what, n);
  const value: unknown = answer?.status === 200 ? answer.value : absent;
  // A document whose writes may all have been erased lawfully may be absent.
  const erasable = ops.some((op) => op.outcome === 'ok' && judge.erasure(op) !== null);
  if (singleWriterFamilies.has(doc.family)) {
    const states = finalStates(ops, datasetType(doc.dataset));
    if (states === null) {
      report.note(`${id}: too many writes of unknown outcome to judge its value`);
      return;
    }
    count(doc.family === 'del' ? 'deletes: documents checked' : 'values: single-writer documents');
    if (states.some((state) => matches(state, answer)) || (value === absent && erasable)) return;
    const deleted = ops.some((op) => op.kind === 'delete' && op.outcome === 'ok') && !states.some((state) => state.exists);
    const shown = answer?.status === 200 ? `${answer.type} ${show(value)} tags [${(answer.tags ?? []).join(', ')}]` : `absent (status ${answer?.status})`;
    // Absent where every outcome leaves the document in place: its acknowledged writes are gone.
    const kind = deleted && value !== absent ? 'resurrection' : value === absent && states.every((state) => state.exists) ? 'lost write' : 'value';
    // Writes acknowledged without a sequence number changed nothing where they were made: say so, it is often why.
    const noops = ops.filter((op) => op.outcome === 'ok' && op.seq === null && op.kind !== 'read-token');
    const why =
      noops.length === 0
        ? ''
        : `; acknowledged without a change (seq null) at their node: ${noops
            .slice(0, 5)
            .map((op) => `op ${op.id} ${op.kind} at ${op.node}`)
            .join(', ')}`;
    report.fail(
      `${kind}: ${id} at ${region} is ${shown}; its writes allow ${states.map((state) => (state.exists ? `${state.type} ${show(state.value)} tags [${state.tags.join(', ')}]` : '(absent)')).join(' or ')}${why}`,
    );
    return;
  }
  switch (doc.family) {
    case 'shared': {
      // One field per client, each written by that client alone.
      for (const client of new Set(ops.map((op) => op.client))) {
        const field = `c${client}`;
        const writes = ops.filter((op) => op.client === client && (op.kind === 'set-field' || op.kind === 'delete-field'));
        const candidates = (finalStates(writes, 'map') ?? []).map((state) =>
          state.exists && field in (state.value as object) ? (state.value as Record<string, unknown>)[field] : absent,
        );
        const actual = value !== absent && typeof value === 'object' && value !== null && field in value ? (value as Record<string, unknown>)[field] : absent;
        count('values: shared-document fields');
        if (candidates.some((candidate) => (candidate === absent ? actual === absent : actual !== absent && canonical(candidate) === canonical(actual))))
          continue;
        if (actual === absent && erasable) continue;
        const noops = writes.filter((op) => op.outcome === 'ok' && op.seq === null);
        const why =
          noops.length === 0
            ? ''
            : `; acknowledged without a change (seq null) at their node: ${noops
                .slice(0, 5)
                .map((op) => `op ${op.id} ${op.kind} at ${op.node}`)
                .join(', ')}`;
        report.fail(
          `value: field ${field} of ${id} at ${region} is ${show(actual)}; client ${client}'s writes allow ${candidates.map(show).join(' or ')}${why}`,
        );
      }
      return;
    }
    case 'hot': {
      const written = new Set(ops.filter(mayHaveHappened).map((op) => canonical(op.args.value)));
      const actual = value !== absent && typeof value === 'object' && value !== null ? (value as Record<string, unknown>).hot : absent;
      count('values: contended field');
      if (actual !== absent && !written.has(canonical(actual))) report.fail(`value: ${id}.hot at ${region} is ${show(actual)}, which no client wrote`);
      if (actual === absent && ops.some((op) => op.outcome === 'ok') && !erasable)
        report.fail(`lost write: ${id}.hot at ${region} is absent although writes of it were acknowledged`);
      return;
    }
    case 'counter': {
      const sum = (outcome: Op['outcome']) => ops.filter((op) => op.outcome === outcome).reduce((total, op) => total + (op.args.amount as number), 0);
      const [low, high] = [sum('ok'), sum('ok') + sum('info')];
      count('values: counters');
      const actual = value === absent ? 0 : (value as number);
      if (actual < low || actual > high)
        report.fail(`value: counter ${id} at ${region} is ${actual}; acknowledged increments sum to ${low}, possible ones to ${high}`);
      return;
    }
    case 'cart': {
      const actual = new Set(value === absent ? [] : (value as string[]));
      const elements = new Map<string, Op[]>();
      for (const op of ops) elements.set(op.args.element as string, [...(elements.get(op.args.element as string) ?? []), op]);
      for (const element of actual) if (!elements.has(element)) report.fail(`value: set ${id} at ${region} holds ${element}, which no client added`);
      for (const [element, history] of elements) {
        const add = history.find((op) => op.kind === 'add');
        if (add === undefined) continue;
        const remove = history.find((op) => op.kind === 'remove');
        count('values: set elements');
        const mustHold = add.outcome === 'ok' && (remove === undefined || remove.outcome === 'fail');
        const mustNotHold = add.outcome === 'fail' || remove?.outcome === 'ok';
        if (mustHold && !actual.has(element)) report.fail(`lost write: set ${id} at ${region} lacks ${element}, whose add was acknowledged (op ${add.id})`);
        const noop = remove?.outcome === 'ok' && remove.seq === null ? `; the remove was acknowledged without a change (seq null) at ${remove.node}` : '';
        if (mustNotHold && actual.has(element))
          report.fail(
            `${remove?.outcome === 'ok' ? 'resurrection' : 'value'}: set ${id} at ${region} holds ${element} (add ${add.outcome}, remove ${remove?.outcome ?? 'none'}${noop})`,
          );
      }
      return;
    }
    case 'race': {
      // Any client's value may win; the tags are among those added.
      count('values: race documents');
      const written = new Set(ops.filter((op) => op.kind === 'put' && mayHaveHappened(op)).map((op) => canonical(op.args.value)));
      if (value !== absent && !written.has(canonical(value))) report.fail(`value: ${id} at ${region} is ${show(value)}, which no client wrote`);
      const added = new Set(ops.filter(mayHaveHappened).flatMap(tagsAdded));
      const stray = (answer?.tags ?? []).filter((tag) => !added.has(tag));
      if (stray.length > 0) report.fail(`value: ${id} at ${region} has tags [${stray.join(', ')}], which no client added`);
      return;
    }
  }
}

/** True when a copy shows the model state (absent, or type, value and tags). */
function matches(state: ModelState, answer: FinalDoc | undefined): boolean {
  if (!state.exists) return answer?.status !== 200;
  if (answer?.status !== 200) return false;
  return (
    answer.type === state.type &&
    canonical(normalize(answer.value, state.type)) === canonical(state.value) &&
    canonical([...(answer.tags ?? [])].sort()) === canonical(state.tags)
  );
}

/** A set's elements sorted (the model keeps them sorted); other values as they are. */
function normalize(value: unknown, type: string | null): unknown {
  return type === 'set' && Array.isArray(value) ? [...value].sort() : value;
}
