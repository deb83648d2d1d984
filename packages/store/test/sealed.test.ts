// Goal: a sealed data directory (storage/sealed.ts) holds no readable byte of user data — values, keys, tags,
// dataset names, conflict records — in any of its files, LevelDB's write-ahead .log included, while open and
// after close; a purged document cannot be decrypted from anything left in the directory; rotating the master
// key keeps the data readable and locks the old key out; a wrong, missing or exposed key is refused with a code.
// Method: real replicas in temp directories with planted marker strings; raw scans of every file's bytes; a raw
// classic-level open of the directory whose every record is tried with every key the directory still yields to
// its master key (re-derived here from node:crypto, independently of the adapter), before and after the purge.
import t from 'tap';
import { createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { chmod, cp, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { isTesseraError, parsePolicy } from '@tessera/core';
import { Replica, createMasterKeyFile, loadDataKey, rotateMasterKey } from '@tessera/store';
import { syncOnce, tempDir } from './helpers.js';

const markers = {
  key: 'KEYMARK7c1',
  value: 'VALUEMARK7c1',
  loser: 'LOSERMARK7c1',
  tag: 'tagmark7c1',
  dataset: 'dsmark7c1',
  shred: 'SHREDMARK7c1',
};

async function filesOf(dir: string): Promise<string[]> {
  return (await readdir(dir)).map((name) => join(dir, name));
}

/** Which markers appear in the bytes of which files (UTF-8 and UTF-16LE, as any engine might store them). */
async function scan(dir: string, wanted: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const path of await filesOf(dir)) {
    const bytes = await readFile(path);
    for (const marker of wanted) {
      if (bytes.includes(Buffer.from(marker, 'utf8')) || bytes.includes(Buffer.from(marker, 'utf16le'))) found.push(`${marker} in ${path}`);
    }
  }
  return found;
}

const policy = (version: number, catalog: string) =>
  parsePolicy(
    `version: ${version}
regions:
  eu-west: { jurisdiction: eu }
  us-east: { jurisdiction: us }
datasets:
  catalog: { placement: ${catalog} }
  ${markers.dataset}: { placement: global }
`,
    `test policy v${version}`,
  );
const peers = [
  { node: 'w1', region: 'eu-west' },
  { node: 'u1', region: 'us-east' },
];

t.test('no plaintext of values, keys, tags, dataset names or conflict records in any file, open or closed', async (t) => {
  const dir = await tempDir(t);
  const masterKey = randomBytes(32);
  const path = join(dir, 'w1');
  const other = await Replica.open({ path: join(dir, 'u1'), node: 'u1', region: 'us-east', durability: 'os', encryption: { masterKey: randomBytes(32) } });
  t.teardown(() => other.close());
  const west = await Replica.open({ path, node: 'w1', region: 'eu-west', durability: 'fsync', encryption: { masterKey } });
  let closed = false;
  t.teardown(() => (closed ? undefined : west.close()));
  await west.put(markers.dataset, markers.key, { field: markers.value }, { tags: [markers.tag] });
  // A conflict record: concurrent writes of the same field in two regions, the loser kept.
  await west.put(markers.dataset, 'c', { field: markers.loser });
  await other.put(markers.dataset, 'c', { field: 'winner' });
  await syncOnce(other, west);
  await syncOnce(west, other);
  t.ok((await west.conflicts()).length + (await other.conflicts()).length > 0, 'a conflict record was written');
  for (let i = 0; i < 50; i++) await west.put(markers.dataset, `${markers.key}-${i}`, { n: i, text: markers.value });
  const logs = (await readdir(path)).filter((name) => name.endsWith('.log') && name !== 'LOG');
  t.ok(logs.length > 0, `LevelDB's write-ahead log is there to scan (${logs.join(', ')})`);
  t.same(await scan(path, Object.values(markers)), [], 'nothing readable while open');
  t.same((await west.get(markers.dataset, markers.key))?.value, { field: markers.value }, 'the replica reads its data');
  t.same(
    (await west.list(markers.dataset, { prefix: `${markers.key}-1`, limit: 3 })).items.map((item) => item.key),
    [`${markers.key}-1`, `${markers.key}-10`, `${markers.key}-11`],
    'lists in key order by prefix',
  );
  await west.close();
  closed = true;
  t.same(await scan(path, Object.values(markers)), [], 'nothing readable after close');
  const reopened = await Replica.open({ path, node: 'w1', region: 'eu-west', durability: 'os', encryption: { masterKey } });
  t.same((await reopened.get(markers.dataset, markers.key))?.tags, [markers.tag], 'reopened with the key, the data is there');
  await reopened.close();
  t.equal(((await stat(path)).mode & 0o777).toString(8), '700', 'the data directory is 0700');
  const modes = await Promise.all((await filesOf(path)).map(async (file) => `${file.slice(path.length + 1)} ${((await stat(file)).mode & 0o777).toString(8)}`));
  t.same(
    modes.filter((line) => !line.endsWith(' 600')),
    [],
    'every file of a closed sealed directory is 0600 (seal.json and seal.keys always)',
  );
});

/** Opens a record as sealed.ts writes it, with `key` (a region record key or a document key); null when it does not open. */
function tryOpen(stored: Buffer, bytes: Buffer, key: Buffer): Buffer | null {
  const headerBytes = bytes[0] === 2 ? 17 : 1;
  const salt = bytes.subarray(headerBytes, headerBytes + 12);
  const sealed = bytes.subarray(headerBytes + 12);
  if (sealed.length < 28) return null;
  const decipher = createDecipheriv('aes-256-gcm', createHmac('sha256', key).update(salt).digest(), sealed.subarray(0, 12));
  decipher.setAAD(Buffer.concat([stored, bytes.subarray(0, headerBytes)]));
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  try {
    return Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]);
  } catch {
    return null;
  }
}

/** A document key found in a slot of `seal.keys`: the key, and its wrapped bytes as they sit in the file. */
interface SlotKey {
  readonly key: Buffer;
  readonly wrapped: Buffer;
}

/** Every key the directory yields to its master key: the region record key and the document keys of every slot. */
async function keysOnDisk(path: string, masterKey: Buffer): Promise<SlotKey[]> {
  const dataKey = (await loadDataKey(path, masterKey, false))!;
  const derive = (info: string) => Buffer.from(hkdfSync('sha256', dataKey, Buffer.alloc(0), info, 32));
  const keys: SlotKey[] = [{ key: derive('tessera/seal/records v1'), wrapped: Buffer.alloc(0) }];
  const wrap = derive('tessera/seal/doc-keys v1');
  const slots = await readFile(join(path, 'seal.keys'));
  for (let at = 0, index = 0; at + 80 <= slots.length; at += 80, index++) {
    const slot = slots.subarray(at, at + 80);
    if (slot[0] !== 1) continue;
    const wrapped = slot.subarray(1, 61);
    const decipher = createDecipheriv('aes-256-gcm', wrap, wrapped.subarray(0, 12));
    decipher.setAAD(Buffer.from(`tessera/seal/doc-key v2\u0000${index}`));
    decipher.setAuthTag(wrapped.subarray(44));
    try {
      keys.push({ key: Buffer.concat([decipher.update(wrapped.subarray(12, 44)), decipher.final()]), wrapped: Buffer.from(wrapped) });
    } catch {
      // not a key
    }
  }
  return keys;
}

/** Which records of the raw LevelDB at `path` open, with some key the directory yields, to bytes holding `marker`; and those keys. */
async function readableMarkers(path: string, masterKey: Buffer, marker: string): Promise<{ found: string[]; keys: SlotKey[] }> {
  const keys = await keysOnDisk(path, masterKey);
  const db = new ClassicLevel<Buffer, Buffer>(path, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  const found: string[] = [];
  const opening = new Set<SlotKey>();
  try {
    for await (const [stored, bytes] of db.iterator()) {
      if (stored.includes(Buffer.from(marker))) found.push(`key ${stored.toString('hex')}`);
      for (const key of keys) {
        if (tryOpen(stored, bytes, key.key)?.includes(Buffer.from(marker))) {
          found.push(`value of ${JSON.stringify(stored.toString('latin1'))}`);
          opening.add(key);
        }
      }
    }
  } finally {
    await db.close();
  }
  return { found, keys: [...opening] };
}

t.test('a purged document cannot be decrypted from anything left in the directory', async (t) => {
  const dir = await tempDir(t);
  const masterKey = randomBytes(32);
  const path = join(dir, 'u1');
  const open = () => Replica.open({ path, node: 'u1', region: 'us-east', durability: 'fsync', policy: policy(1, 'global'), peers, encryption: { masterKey } });
  let us = await open();
  await us.put('catalog', 'doomed', { text: markers.shred }, { tags: ['t1'] });
  await us.map('catalog', 'doomed').set('more', markers.shred);
  await us.put('catalog', 'kept', { text: 'kept' });
  await us.put(markers.dataset, 'stays', { text: 'stays' });
  await us.close();
  const before = join(dir, 'before');
  await cp(path, before, { recursive: true });
  const planted = await readableMarkers(before, masterKey, markers.shred);
  t.ok(planted.found.length > 0, 'the method finds the planted value before the purge (the test can fail)');
  t.equal(planted.keys.length, 1, 'under one document key');

  us = await open();
  await us.installPolicy(policy(2, '{ regions: [eu-west] }'), 'enforce', 'test');
  t.equal(await us.settleHandovers(() => us.lastSeq), 2, 'both catalog documents purged');
  t.equal(await us.get('catalog', 'doomed'), undefined);
  await us.close();
  t.same((await readableMarkers(path, masterKey, markers.shred)).found, [], 'no record left opens to the purged value, with any key the directory yields');
  // The purged document's slot was overwritten in place: its wrapped key is in no file of the directory.
  for (const file of await filesOf(path)) {
    t.notOk((await readFile(file)).includes(planted.keys[0]!.wrapped), `the shredded key is not in ${file}`);
  }
  const again = await open();
  t.same((await again.get(markers.dataset, 'stays'))?.value, { text: 'stays' }, 'the other documents stay readable');
  t.same((await again.audit()).filter((e) => e.kind === 'purge').length, 2, 'the purges are audited (under the data key)');
  await again.put('catalog', 'doomed', { text: 'x' }).catch(() => undefined);
  await again.close();
});

t.test('rotating the master key keeps the data readable and locks the old key out; a wrong key is refused', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'n1');
  const oldFile = join(dir, 'old.key');
  const newFile = join(dir, 'new.key');
  const oldKey = await createMasterKeyFile(oldFile);
  const newKey = await createMasterKeyFile(newFile);
  t.equal(((await stat(oldFile)).mode & 0o777).toString(8), '600', 'a new master key file is 0600');
  const open = (encryption: object | undefined) =>
    Replica.open({ path, node: 'n1', region: 'eu-west', durability: 'os', ...(encryption === undefined ? {} : { encryption }) } as never);
  let replica = await open({ masterKeyFile: oldFile });
  await replica.put('users', 'u1', { name: 'Ada' });
  await replica.close();
  const wrong = await open({ masterKey: randomBytes(32) }).catch((error: unknown) => error);
  t.ok(isTesseraError(wrong, 'ERR_SEAL_KEY_WRONG'), `a wrong master key is refused: ${(wrong as Error).message}`);
  const none = await open(undefined).catch((error: unknown) => error);
  t.ok(isTesseraError(none, 'ERR_SEAL_KEY_MISSING'), `no master key for a sealed directory is refused: ${(none as Error).message}`);
  const ids = await rotateMasterKey(path, oldKey, newKey);
  t.not(ids.from, ids.to);
  const old = await open({ masterKeyFile: oldFile }).catch((error: unknown) => error);
  t.ok(isTesseraError(old, 'ERR_SEAL_KEY_WRONG'), 'the old key no longer opens it');
  replica = await open({ masterKeyFile: newFile });
  t.same((await replica.get('users', 'u1'))?.value, { name: 'Ada' }, 'the new key reads the data');
  await replica.close();
  const twice = await rotateMasterKey(path, oldKey, newKey).catch((error: unknown) => error);
  t.ok(isTesseraError(twice, 'ERR_SEAL_KEY_WRONG'), 'rotating needs the current key');
});

t.test('an exposed master key file, a malformed key and an unsealed directory are refused with codes', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'master.key');
  await createMasterKeyFile(file);
  await chmod(file, 0o644);
  const exposed = await Replica.open({ path: join(dir, 'a'), node: 'n1', region: 'eu-west', encryption: { masterKeyFile: file } }).catch(
    (error: unknown) => error,
  );
  t.ok(isTesseraError(exposed, 'ERR_FILE_MODE'), `a key file others may read is refused: ${(exposed as Error).message}`);
  t.match((exposed as Error).message, /mode 0644.*0600/);
  await writeFile(join(dir, 'short.key'), 'abc\n', { mode: 0o600 });
  const short = await Replica.open({ path: join(dir, 'b'), node: 'n1', region: 'eu-west', encryption: { masterKeyFile: join(dir, 'short.key') } }).catch(
    (error: unknown) => error,
  );
  t.ok(isTesseraError(short, 'ERR_SEAL_KEY_INVALID'), `a malformed key is refused: ${(short as Error).message}`);
  const plain = await Replica.open({ path: join(dir, 'c'), node: 'n1', region: 'eu-west', durability: 'os' });
  await plain.put('users', 'u1', { name: 'Ada' });
  await plain.close();
  const late = await Replica.open({ path: join(dir, 'c'), node: 'n1', region: 'eu-west', encryption: { masterKey: randomBytes(32) } }).catch(
    (error: unknown) => error,
  );
  t.ok(isTesseraError(late, 'ERR_SEAL_KEY_MISSING'), `an unsealed directory is not sealed in place: ${(late as Error).message}`);
});
