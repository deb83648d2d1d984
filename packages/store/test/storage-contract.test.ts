// Goal: every storage adapter keeps the contract the replica relies on (storage/port.ts): atomic batches,
// reads of what was written, ranges in byte order with bounds, limits and direction, clears, content kept
// across close and reopen, and a replica that works alike on each.
// Method: one suite, run over the LevelDB adapter (a temp directory), the memory adapter, and sealed storage
// (storage/sealed.ts) over each, whose digested families (d, h, x) are served from an in-memory index.
import t from 'tap';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Replica, type StoragePort, levelStorage, memoryStorage, sealedLevelStorage, sealedMemoryStorage } from '@tessera/store';
import { tempDir } from './helpers.js';

const adapters: Array<[string, (t: Parameters<typeof tempDir>[0]) => Promise<StoragePort>]> = [
  ['leveldb', async (t) => levelStorage(join(await tempDir(t), 'db'))],
  ['memory', async () => memoryStorage()],
  ['sealed leveldb', async (t) => sealedLevelStorage(join(await tempDir(t), 'db'), randomBytes(32))],
  ['sealed memory', async () => sealedMemoryStorage()],
];

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array | undefined) => (value === undefined ? undefined : new TextDecoder().decode(value));

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

for (const [name, make] of adapters) {
  t.test(`${name}: batches, reads, ranges, clears, reopen`, async (t) => {
    const storage = await make(t);
    await storage.open();
    await storage.write(
      [
        { type: 'put', key: 'a\u00001', value: bytes('one') },
        { type: 'put', key: 'a\u00002', value: bytes('two') },
        { type: 'put', key: 'b', value: bytes('bee') },
        { type: 'put', key: 'a\u00003', value: bytes('three') },
      ],
      { sync: true },
    );
    t.equal(text(await storage.get('b')), 'bee');
    t.equal(await storage.get('missing'), undefined);
    t.same((await storage.getMany(['a\u00002', 'nope', 'b'])).map(text), ['two', undefined, 'bee']);
    const range = { gte: 'a\u0000', lt: 'a\u0001' };
    t.same(await collect(storage.keys(range)), ['a\u00001', 'a\u00002', 'a\u00003'], 'keys of a range in byte order');
    t.same(await collect(storage.keys({ ...range, reverse: true, limit: 2 })), ['a\u00003', 'a\u00002'], 'reversed, limited');
    t.same(
      (await collect(storage.entries({ gt: 'a\u00001', lte: 'a\u00002' }))).map(([k, v]) => [k, text(v)]),
      [['a\u00002', 'two']],
      'exclusive and inclusive bounds',
    );
    await storage.write(
      [
        { type: 'del', key: 'a\u00002' },
        { type: 'put', key: 'c', value: bytes('sea') },
      ],
      { sync: false },
    );
    t.equal(await storage.get('a\u00002'), undefined, 'a delete in a batch');
    await storage.clear({ gte: 'a\u0000', lt: 'a\u0001' });
    t.same(await collect(storage.keys({})), ['b', 'c'], 'a cleared range is gone');
    await storage.compact();
    await storage.close();
    await storage.open();
    t.same(await collect(storage.keys({})), ['b', 'c'], 'content survives close and reopen');
    await storage.close();
  });

  t.test(`${name}: a replica writes, reads and reopens`, async (t) => {
    const storage = await make(t);
    let replica = await Replica.open({ storage, node: 'n1', region: 'eu-west', durability: 'os' });
    await replica.put('users', 'u1', { name: 'Ada' });
    await replica.counter('stats', 'c').increment(3);
    await replica.close();
    replica = await Replica.open({ storage, node: 'n1', region: 'eu-west', durability: 'os' });
    t.teardown(() => replica.close());
    t.same((await replica.get('users', 'u1'))?.value, { name: 'Ada' });
    t.equal(await replica.counter('stats', 'c').value(), 3);
    t.equal(replica.lastSeq, 2, 'the log head is recovered');
  });

  t.test(`${name}: document records (d, h, x) in key order among plain ones`, async (t) => {
    const storage = await make(t);
    await storage.open();
    const keys = [
      'd\u0000users\u0000b',
      'd\u0000users\u0000a',
      'd\u0000users\u0000\u{1f600}',
      'd\u0000users\u0000\uffee',
      'd\u0000zoo\u0000a',
      'h\u0000users\u0000a',
      'l\u00000000000000000001',
      'x\u0000users\u0000a\u0000c1',
      'x\u0000users\u0000a\u0000c2',
      'x\u0000users\u0000b\u0000c1',
      'meta',
      'seq',
    ];
    await storage.write(
      keys.map((key) => ({ type: 'put' as const, key, value: bytes(`v:${key}`) })),
      { sync: true },
    );
    const sorted = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    t.same(await collect(storage.keys({})), sorted, 'every key, in UTF-8 byte order');
    t.same(await collect(storage.keys({ reverse: true })), [...sorted].reverse(), 'reversed');
    t.same(
      await collect(storage.keys({ gte: 'd\u0000users\u0000', lt: 'd\u0000users\u0000\u{10ffff}' })),
      ['d\u0000users\u0000a', 'd\u0000users\u0000b', 'd\u0000users\u0000\uffee', 'd\u0000users\u0000\u{1f600}'],
      'one dataset, past the BMP last',
    );
    t.same(
      await collect(storage.keys({ gt: 'd\u0000users\u0000a', lt: 'd\u0001', limit: 2 })),
      ['d\u0000users\u0000b', 'd\u0000users\u0000\uffee'],
      'after a cursor, limited',
    );
    t.same(
      await collect(storage.keys({ gte: 'h', lte: 'l\u00000000000000000001' })),
      ['h\u0000users\u0000a', 'l\u00000000000000000001'],
      'a range across a family and plain keys',
    );
    t.same(
      (await collect(storage.entries({ gte: 'x\u0000users\u0000a\u0000', lt: 'x\u0000users\u0000a\u0000\u{10ffff}' }))).map(([k, v]) => [k, text(v)]),
      [
        ['x\u0000users\u0000a\u0000c1', 'v:x\u0000users\u0000a\u0000c1'],
        ['x\u0000users\u0000a\u0000c2', 'v:x\u0000users\u0000a\u0000c2'],
      ],
      "one document's conflict records",
    );
    t.same(
      (await collect(storage.entries({ limit: 3 }))).map(([k, v]) => [k, text(v)]),
      sorted.slice(0, 3).map((k) => [k, `v:${k}`]),
      'values with keys',
    );
    t.same((await storage.getMany(['d\u0000users\u0000b', 'd\u0000users\u0000nope'])).map(text), ['v:d\u0000users\u0000b', undefined]);
    await storage.write([{ type: 'del', key: 'd\u0000users\u0000b' }], { sync: false });
    await storage.clear({ gte: 'x\u0000users\u0000b\u0000', lt: 'x\u0000users\u0000b\u0000\u{10ffff}' });
    await storage.compact({ gte: 'd\u0000users\u0000', lt: 'd\u0000users\u0000\u{10ffff}' });
    await storage.close();
    await storage.open();
    const left = sorted.filter((key) => key !== 'd\u0000users\u0000b' && key !== 'x\u0000users\u0000b\u0000c1');
    t.same(await collect(storage.keys({})), left, 'deletes and clears survive reopen');
    t.equal(text(await storage.get('x\u0000users\u0000a\u0000c2')), 'v:x\u0000users\u0000a\u0000c2');
    await storage.close();
  });
}
