/**
 * Embedded Tessera: two replicas in one process, written concurrently, synced by hand through the same seam
 * replication uses (`deltasSince` / `applyDeltas`), converging — with the conflict record that the
 * concurrent overwrite left behind.
 *
 *   npm start            (until the local cluster lands, `npm start` runs this example)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Replica } from 'tesseradb';

/** Copies every delta `from` has logged since `cursor` into `to`; returns the new cursor. */
async function sync(from: Replica, to: Replica, cursor: number): Promise<number> {
  for (;;) {
    const { entries } = await from.deltasSince(cursor, { limit: 500 });
    if (entries.length === 0) return cursor;
    await to.applyDeltas(entries);
    cursor = entries[entries.length - 1]!.seq;
  }
}

/** Runs the example and returns what it observed (the test checks it). */
export async function runExample(log: (line: string) => void = console.log) {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-example-'));
  const eu = await Replica.open({ path: join(dir, 'eu-west-1'), node: 'eu-west-1', region: 'eu-west', durability: 'os' });
  const us = await Replica.open({ path: join(dir, 'us-east-1'), node: 'us-east-1', region: 'us-east', durability: 'os' });
  try {
    // Both regions start from the same profile.
    await eu.put('profiles', 'u42', { name: 'Ada', city: 'Dublin', plan: 'free' }, { tags: ['pii'] });
    let euToUs = await sync(eu, us, 0);
    let usToEu = 0;

    // Concurrent writes, no sync in between: a field both change, fields only one changes, counters, sets.
    await eu.map('profiles', 'u42').set('city', 'Cork');
    await us.map('profiles', 'u42').set('city', 'Boston');
    await us.map('profiles', 'u42').set('plan', 'pro');
    await eu.counter('stats', 'visits').increment(3);
    await us.counter('stats', 'visits').increment(4);
    await eu.set('carts', 'u42').add('book');
    await us.set('carts', 'u42').add('lamp');
    await eu.yjs('notes', 'n1').change((doc) => doc.getText('body').insert(0, 'Hello from EU. '));
    await us.yjs('notes', 'n1').change((doc) => doc.getText('body').insert(0, 'Hello from US. '));

    euToUs = await sync(eu, us, euToUs);
    usToEu = await sync(us, eu, usToEu);

    const [profileEu, profileUs] = [await eu.get('profiles', 'u42'), await us.get('profiles', 'u42')];
    const visits = [await eu.counter('stats', 'visits').value(), await us.counter('stats', 'visits').value()];
    const carts = [await eu.set('carts', 'u42').values(), await us.set('carts', 'u42').values()];
    const notes = [(await eu.yjs('notes', 'n1').doc())!.getText('body').toString(), (await us.yjs('notes', 'n1').doc())!.getText('body').toString()];

    log(`profile in eu-west: ${JSON.stringify(profileEu?.value)}`);
    log(`profile in us-east: ${JSON.stringify(profileUs?.value)}`);
    log(`visits: ${visits.join(' / ')}   carts: ${JSON.stringify(carts[0])} / ${JSON.stringify(carts[1])}`);
    log(`notes: ${JSON.stringify(notes[0])} / ${JSON.stringify(notes[1])}`);
    const conflicts = [...(profileEu?.conflicts ?? []), ...(profileUs?.conflicts ?? [])];
    for (const [region, view] of [
      ['eu-west', profileEu],
      ['us-east', profileUs],
    ] as const) {
      for (const c of view?.conflicts ?? []) {
        log(
          `${region} recorded a conflict on ${c.dataset}/${c.key} field "${c.path.join('.')}": kept ${JSON.stringify(c.winner.value)} ` +
            `(dot ${c.winner.dot?.join(':')}), hid ${JSON.stringify(c.loser.value)} (dot ${c.loser.dot?.join(':')})`,
        );
      }
    }
    return { profiles: [profileEu?.value, profileUs?.value], visits, carts, notes, conflicts, tags: profileEu?.tags };
  } finally {
    await eu.close();
    await us.close();
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log('Tessera embedded example (the multi-region local cluster, `tessera dev`, is not built yet).\n');
  await runExample();
}
