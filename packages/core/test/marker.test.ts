// Goal: a purge marker remembers of a document only its placement facts (dots, stamps, tags) — never its key
// or value — and what it remembers is enough to judge a late copy (stale or of another lineage) and to tell a
// stale sender the lineage's facts without taking anything from its copy, after which it is stale no more.
// Method: documents written by two nodes with the real mutators; markers of their copies, joined and stored
// as their JSON form; the head a marker gives joined into a stale copy.
import t from 'tap';
import {
  type DocState,
  coversMarker,
  docFacts,
  docTags,
  docValue,
  emptyDoc,
  joinDocs,
  markerForm,
  markerFromForm,
  markerHead,
  markerOf,
  mutate,
  operationMutator,
} from '@tessera/core';

const set = (value: number) => operationMutator('map', { op: 'set', path: ['f'], value }, 'test/map');

function write(doc: DocState, node: string, region: string, ms: number, value: number, tags?: { add: string[]; remove: string[] }): DocState {
  const result = mutate(doc, node, { ms, c: 0 }, set(value), tags, { region, type: 'map' });
  if (result === null) throw new Error('no change');
  return result.state;
}

t.test('a marker holds dots and stamps, survives its stored form, and joins with an earlier one', async (t) => {
  const early = write(emptyDoc('map'), 'n1', 'eu-west', 1_000, 1, { add: ['pii'], remove: [] });
  const late = write(emptyDoc('map'), 'n2', 'us-east', 2_000, 2);
  const marker = markerOf(joinDocs(early, late).state, 'n1', null);
  t.equal(marker.origin?.region, 'eu-west', 'the earliest creation is the origin');
  t.equal(marker.counter, joinDocs(early, late).state.ctx.maxCounter('n1'));
  const form = JSON.stringify(markerForm(marker));
  t.notMatch(form, /"f"/, 'no field name in the stored form');
  t.match(form, /pii/, 'the tags are kept: they are what a stale sender must learn');
  const back = markerFromForm(JSON.parse(form));
  t.same(back.origin, marker.origin);
  t.same(back.typed, marker.typed);
  t.same(back.seen.toJSON(), marker.seen.toJSON());
  t.same(back.tagDots.toJSON(), marker.tagDots.toJSON());
  t.same([...back.tags.keys()], [...marker.tags.keys()]);
  const joined = markerOf(late, 'n1', back);
  t.equal(joined.origin?.region, 'eu-west', "an earlier marker's origin stays");
  const legacy = markerFromForm(5);
  t.same(
    [legacy.counter, legacy.typed, legacy.origin, legacy.seen.isEmpty],
    [5, null, null, true],
    'a store-format-1 counter reads as a marker without stamps',
  );
});

t.test('a copy of the lineage that has not seen the tag operations is stale; another lineage is not', async (t) => {
  const created = write(emptyDoc('map'), 'n1', 'eu-west', 1_000, 1);
  const tagged = write(created, 'n1', 'eu-west', 1_500, 2, { add: ['pii'], remove: [] });
  const marker = markerOf(tagged, 'n3', null);
  t.notOk(coversMarker(created, created, marker), 'the copy before the tag is stale');
  t.ok(coversMarker(tagged, tagged, marker), 'a copy that saw the tag is not');
  const other = write(emptyDoc('map'), 'n2', 'us-east', 900, 9);
  t.ok(coversMarker(other, other, marker), 'a re-creation that shares no dot is judged as any copy');
});

t.test('the head of a marker tells a stale copy the origin, type and tags, and takes nothing from it', async (t) => {
  const original = write(emptyDoc('map'), 'n1', 'eu-west', 1_000, 1);
  const marker = markerOf(original, 'n3', null);
  // A concurrent creation elsewhere, later by its clock, that never met the original.
  const stale = write(emptyDoc('map'), 'n2', 'us-east', 5_000, 7, { add: ['keep'], remove: [] });
  const head = markerHead(marker, 'map');
  t.same(docTags(head), [], 'the head names no tag the copy did not have');
  t.ok(head.ctx.isEmpty, 'and holds no dot (the copy had no tag operation)');
  const told = joinDocs(stale, head).state;
  t.equal(docFacts('d', 'k', told).origin, 'eu-west', "the stale copy learns the lineage's origin");
  t.same(docValue(told), docValue(stale), 'its value is untouched');
  t.same(docTags(told), ['keep'], 'and so are its tags');
});

t.test('a stale copy that joins the head of a marker learns the tags every copy that saw them purged, and is stale no more', async (t) => {
  // The original is quarantined, then purged here; a fragment of it (its first write only) lives on elsewhere.
  const first = write(emptyDoc('map'), 'n1', 'us-west', 1_000, 1);
  const quarantined = write(first, 'n1', 'us-west', 1_500, 2, { add: ['quarantine'], remove: [] });
  const marker = markerOf(quarantined, 'n3', null);
  const fragment = write(first, 'n2', 'eu-central', 2_000, 3);
  t.notOk(coversMarker(fragment, fragment, marker), 'the fragment never saw the tag: stale');
  const told = joinDocs(fragment, markerHead(marker, 'map')).state;
  t.same(docTags(told), ['quarantine'], 'it learns the quarantine');
  t.same(docValue(told), docValue(fragment), 'its value is untouched');
  t.ok(coversMarker(told, told, marker), 'and the marker judges it no more stale');
});
