/**
 * Sealed storage: a storage port over any storage port that encrypts every value and hides the user data in
 * keys, with AES-256-GCM from node:crypto (seal-keys.ts holds the keys and the primitives).
 *
 * Values. Every record is `kind | [document digest] | salt | nonce | ciphertext | tag`: the AES key is
 * HMAC-SHA256(K, salt) for a random 96-bit salt drawn per batch and key, and the nonce is random per record, so
 * no key ever meets the random-nonce bound of GCM (2^32 records) however many batches rewrite `seq` and `hlc`. The AAD is the
 * stored key and the header: a record moved under another key, or to another document's key, fails to open.
 * K is the document's own key for everything that belongs to one document — its state (d), conflict records
 * (x), handover record (h) and delta-log entries (l) but purge notices — and a key derived from the data key
 * for everything else (the format record, sequence numbers, cursors, audit, policies, purge notices, counter
 * floors).
 *
 * Keys. Records the replica reads by document — `d␀<dataset>␀<key>`, `x␀<dataset>␀<key>␀<id>` and
 * `h␀<dataset>␀<key>` — are stored as `<family>␀<HMAC(dataset)>␀<HMAC(stored key)>`, the plain key sealed
 * inside the value. Lists and scans need them in key order, which digests lose: an index of the plain keys,
 * in order, is kept in memory (rebuilt at open by opening those records) and serves ranges and limits.
 * What stays plain is structure, never user data: one-letter prefixes, sequence numbers of the delta log,
 * audit log, owed notices and policy versions (ordered scans by number need them; they tell how many entries
 * exist, which the files' sizes tell anyway), peer and node ids in cursors and frontiers (configuration), and
 * digests the replica already uses (counter floors). The disk does tell which records belong to the same
 * dataset (a digest prefix) and which log entries to the same document (the digest in their header), and how
 * large each record is.
 *
 * Crypto-shredding. Each document's key sits wrapped under the data key in a slot of the slot file
 * (slots.ts; slots are filled ahead in a reserve), with a pointer record `\u0001k␀<digest>` → slot committed in
 * the batch that first uses it. A batch that
 * deletes `k␀<dataset>␀<key>` (layout.ts `docSecretKey`: a purge does) deletes the pointer with the purge's
 * other deletes, then overwrites the slot with zeros: what LevelDB keeps of the document until it compacts
 * can no longer be opened. A crash between the two leaves a slot without pointer, zeroed at the next open.
 */
import { type KeyObject, createHmac, createSecretKey, randomBytes } from 'node:crypto';
import { chmod, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { TesseraError, assert } from '@tessera/core';
import { decodeLogEntry } from '../log-entry.js';
import { levelStorage, memoryStorage } from './level.js';
import { type BatchOp, type StoragePort, type StorageRange } from './port.js';
import { deriveKey, gcmOpen, gcmSeal, loadDataKey, poolRandom, readMasterKeyFile, sealKeyBytes, slotsFileName } from './seal-keys.js';
import { type SlotStore, fileSlots, memorySlots, slotBytes, slotsMax } from './slots.js';
import { type KeyBounds, SortedKeys, compareUtf8 } from './utf8-order.js';

const sep = '\u0000';
/** Families whose keys hold user data: stored under digests, served in order from the in-memory index. */
const digestedFamilies = ['d', 'h', 'x'] as const;
/** Records of the adapter itself (document-key pointers); never shown to the replica. */
const internalPrefix = '\u0001';
const pointerPrefix = `${internalPrefix}k${sep}`;
/** The plain key whose delete shreds a document (layout.ts docSecretKey). */
const secretPrefix = `k${sep}`;
const logPrefix = `l${sep}`;
/** A digest in a stored key or a record header, in bytes (128 bits). */
export const sealDigestBytes = 16;
const saltBytes = 12;
const kindRegion = 1;
const kindDocument = 2;
/** Digests remembered (names of hot documents and records); the memo is emptied when full. */
export const sealedDigestsCachedMax = 16_384;
/** Records fetched from the engine per read while serving a range from the index. */
export const sealedFetchRecordsMax = 64;
const docKeyWrapInfo = 'tessera/seal/doc-key v2';
/** A wrapped document key in its slot: nonce, 32 bytes, tag. */
const wrappedKeyBytes = 60;
/** Slots filled ahead at a time (one write, one fsync for this many new documents). */
export const sealedReserveSlots = 256;

/** Where the data key comes from: `create` asks for a new one when the store is empty. */
export type DataKeySource = (create: boolean) => Promise<Buffer | undefined>;

/** Options of `sealedStorage`. */
export interface SealedOptions {
  /** The engine that holds the sealed records. */
  readonly inner: StoragePort;
  /** Where document keys live (a file in the data directory; memory for tests). */
  readonly slots: SlotStore;
  /** The data key, unwrapped with the master key. */
  readonly dataKey: DataKeySource;
  /** A directory to keep at mode 0700 on open (the data directory). */
  readonly directory?: string;
}

interface DocKey {
  readonly slot: number;
  readonly key: KeyObject;
  /** The batch that wrote its pointer is committed. */
  committed: boolean;
  /** Resolves when its slot is written (before any batch that names it may go down). */
  written: Promise<void>;
  /** Its slot was fsynced (a batch with `sync` that names it must not go down before). */
  synced: boolean;
}

/** A per-record key: HMAC-SHA256 of a key and a random salt stored with the record. */
interface Subkey {
  readonly salt: Buffer;
  readonly key: Buffer;
}

/** The document keys one batch uses and makes. */
interface BatchKeys {
  /** Keys taken from the reserve by this batch. */
  readonly created: DocKey[];
  readonly used: Set<DocKey>;
  /** Digests whose pointer the batch carries. */
  readonly pointed: Set<string>;
}

/** Sealed storage over `options.inner`. */
export function sealedStorage(options: SealedOptions): SealedStorage {
  return new SealedStorage(options);
}

/** A sealed LevelDB data directory at `path`, keys wrapped by `masterKey` (32 bytes). */
export function sealedLevelStorage(path: string, masterKey: Uint8Array): SealedStorage {
  return sealedStorage({
    inner: levelStorage(path),
    slots: fileSlots(join(path, slotsFileName)),
    directory: path,
    dataKey: (create) => loadDataKey(path, masterKey, create),
  });
}

/** A sealed LevelDB data directory whose master key is read from a file (refused when others may read it). */
export async function sealedLevelStorageFromKeyFile(path: string, masterKeyFile: string): Promise<SealedStorage> {
  return sealedLevelStorage(path, await readMasterKeyFile(masterKeyFile));
}

/** Sealed memory storage (tests): a random data key, kept with the object like memoryStorage's content. */
export function sealedMemoryStorage(name = 'sealed memory'): SealedStorage & { readonly slotStore: ReturnType<typeof memorySlots> } {
  const dataKey = randomBytes(sealKeyBytes);
  const slots = memorySlots();
  return Object.assign(sealedStorage({ inner: memoryStorage(name), slots, dataKey: async () => dataKey }), { slotStore: slots });
}

/** The storage port over sealed records. */
export class SealedStorage implements StoragePort {
  readonly description: string;
  private recordKey: KeyObject | null = null;
  private digestKey: KeyObject | null = null;
  private wrapKey: Buffer | null = null;
  private readonly index = new SortedKeys();
  private readonly docKeys = new Map<string, DocKey>();
  private readonly digests = new Map<string, string>();
  private lastSubkey: { master: KeyObject; salt: Buffer; key: Buffer } | null = null;
  private freeSlots: number[] = [];
  private slotCount = 0;
  /** Filled slots not yet given to a document (zeroed at the next open if unused). */
  private reserve: DocKey[] = [];

  constructor(private readonly options: SealedOptions) {
    this.description = `sealed ${options.inner.description}`;
  }

  private get keyring(): { record: KeyObject; digest: KeyObject; wrap: Buffer } {
    if (this.recordKey === null) throw new TesseraError('ERR_STORE_CLOSED', `${this.description} is not open`);
    return { record: this.recordKey, digest: this.digestKey!, wrap: this.wrapKey! };
  }

  async open(): Promise<void> {
    const { inner } = this.options;
    await inner.open();
    try {
      if (this.options.directory !== undefined) await keepPrivate(this.options.directory);
      let empty = true;
      for await (const _key of inner.keys({ limit: 1 })) empty = false;
      const dataKey = await this.options.dataKey(empty);
      if (dataKey === undefined) {
        throw new TesseraError(
          'ERR_SEAL_KEY_MISSING',
          `${inner.description} holds records but no wrapped data key: it is not a sealed data directory (an unsealed directory cannot be sealed in place)`,
        );
      }
      this.recordKey = createSecretKey(deriveKey(dataKey, 'tessera/seal/records v1'));
      this.digestKey = createSecretKey(deriveKey(dataKey, 'tessera/seal/digests v1'));
      this.wrapKey = deriveKey(dataKey, 'tessera/seal/doc-keys v1');
      await this.loadDocKeys();
      await this.buildIndex();
    } catch (error) {
      this.forget();
      await inner.close().catch(() => undefined);
      await this.options.slots.close().catch(() => undefined);
      throw error;
    }
  }

  async close(): Promise<void> {
    this.forget();
    await this.options.slots.close();
    await this.options.inner.close();
    if (this.options.directory !== undefined) await keepPrivate(this.options.directory).catch(() => undefined);
  }

  private forget(): void {
    this.recordKey = null;
    this.digestKey = null;
    this.wrapKey?.fill(0);
    this.wrapKey = null;
    this.docKeys.clear();
    this.digests.clear();
    this.lastSubkey = null;
    this.freeSlots = [];
    this.slotCount = 0;
    this.reserve = [];
    this.index.reset([]);
  }

  // ------------------------------------------------------------------ document keys

  /**
   * Reads the slots, keeps those a committed pointer names, zeroes the others: the reserve of the last run, and
   * what a crash left between a purge's batch and the zeroing of its slots.
   */
  private async loadDocKeys(): Promise<void> {
    const slots = await this.options.slots.open();
    assert(slots.length <= slotsMax, 'slot file over its bound');
    this.slotCount = slots.length;
    const owners = new Map<number, string>();
    for await (const [stored, bytes] of this.options.inner.entries({ gte: pointerPrefix, lt: `${internalPrefix}k\u0001` })) {
      const slot = this.openValue(stored, bytes).readUInt32BE(0);
      if (owners.has(slot)) throw corrupt(stored, `its key slot ${slot} belongs to another document too`);
      owners.set(slot, stored.slice(pointerPrefix.length));
    }
    const orphans: number[] = [];
    for (let slot = 0; slot < slots.length; slot++) {
      const bytes = slots[slot]!;
      const digest = owners.get(slot);
      if (digest === undefined) {
        if (bytes.some((byte) => byte !== 0)) orphans.push(slot);
        else this.freeSlots.push(slot);
        continue;
      }
      const key = bytes[0] === 1 ? gcmOpen(this.keyring.wrap, bytes.subarray(1, 1 + wrappedKeyBytes), this.slotAad(slot)) : null;
      // A pointer whose slot does not open: that document's records read as ERR_STORE_CORRUPT.
      if (key === null) continue;
      this.docKeys.set(digest, { slot, key: createSecretKey(key), committed: true, written: Promise.resolve(), synced: true });
      key.fill(0);
    }
    if (orphans.length > 0) {
      await this.options.slots.write(
        orphans.map((index) => ({ index, bytes: Buffer.alloc(slotBytes) })),
        true,
      );
      this.freeSlots.push(...orphans);
    }
    this.freeSlots.sort((a, b) => b - a);
  }

  /** A slot's key is bound to the slot (a pointer record, authenticated, binds the slot to its document). */
  private slotAad(slot: number): Buffer {
    return Buffer.from(`${docKeyWrapInfo}${sep}${slot}`);
  }

  /**
   * A document key from the reserve: slots filled ahead, `sealedReserveSlots` at a time in one write, so that
   * creating a document writes no slot (and, with fsync durability, costs no second fsync).
   */
  private reserveKey(batch: BatchKeys, sync: boolean): DocKey {
    if (this.reserve.length === 0) {
      const filled: DocKey[] = [];
      const writes: Array<{ index: number; bytes: Uint8Array }> = [];
      for (let i = 0; i < sealedReserveSlots; i++) {
        const slot = this.freeSlots.pop() ?? this.slotCount++;
        if (slot >= slotsMax) {
          if (i > 0) break;
          throw new TesseraError('ERR_STORE_IO', `${this.options.slots.description}: ${slotsMax} document keys, the most a slot file holds`);
        }
        const raw = randomBytes(sealKeyBytes);
        const bytes = Buffer.alloc(slotBytes);
        bytes[0] = 1;
        gcmSeal(this.keyring.wrap, raw, this.slotAad(slot)).copy(bytes, 1);
        filled.push({ slot, key: createSecretKey(raw), committed: false, written: Promise.resolve(), synced: false });
        raw.fill(0);
        writes.push({ index: slot, bytes });
      }
      // Written before this batch goes down (write() awaits it), with the batch's durability.
      const written = this.options.slots.write(writes, sync);
      written.catch(() => undefined);
      for (const entry of filled) entry.written = written;
      if (sync)
        void written.then(
          () => filled.forEach((entry) => (entry.synced = true)),
          () => undefined,
        );
      this.reserve = filled.reverse();
    }
    const entry = this.reserve.pop()!;
    batch.created.push(entry);
    return entry;
  }

  /** The key of the document `digest` (one from the reserve when it has none); its pointer goes in `ops` until a batch that carried it is committed. */
  private docKeyFor(digest: string, ops: BatchOp[], batch: BatchKeys, sync: boolean): DocKey {
    let entry = this.docKeys.get(digest);
    if (entry === undefined) {
      entry = this.reserveKey(batch, sync);
      this.docKeys.set(digest, entry);
    }
    batch.used.add(entry);
    if (!entry.committed && !batch.pointed.has(digest)) {
      batch.pointed.add(digest);
      const index = Buffer.alloc(4);
      index.writeUInt32BE(entry.slot);
      ops.push({ type: 'put', key: `${pointerPrefix}${digest}`, value: this.sealValue(`${pointerPrefix}${digest}`, index, null) });
    }
    return entry;
  }

  // ------------------------------------------------------------------ digests and envelopes

  private digest(text: string): string {
    let out = this.digests.get(text);
    if (out === undefined) {
      out = createHmac('sha256', this.keyring.digest).update(text).digest().subarray(0, sealDigestBytes).toString('base64url');
      // A bounded memo: hot documents are written and read again and again.
      if (this.digests.size >= sealedDigestsCachedMax) this.digests.clear();
      this.digests.set(text, out);
    }
    return out;
  }

  /** The digest that names a document (in its key's slot and its records' headers). */
  private docDigest(dataset: string, key: string): string {
    return this.digest(`doc${sep}${dataset}${sep}${key}`);
  }

  /** The stored key of a record of a digested family. */
  private storedKey(plain: string): string {
    const { dataset } = splitDigested(plain);
    return `${plain[0]}${sep}${this.digest(`dataset${sep}${dataset}`)}${sep}${this.digest(`record${sep}${plain}`)}`;
  }

  /**
   * Seals one record. `subkeys` holds the subkeys one batch drew: the records a batch seals under one key share
   * a salt (one HMAC per key and batch, not per record), each with its own random nonce — a handful of records
   * per subkey, far below GCM's random-nonce bound.
   */
  private sealValue(stored: string, plain: Uint8Array, doc: { digest: string; key: KeyObject } | null, subkeys?: Map<KeyObject, Subkey>): Buffer {
    const header = doc === null ? Buffer.from([kindRegion]) : Buffer.concat([Buffer.from([kindDocument]), Buffer.from(doc.digest, 'base64url')]);
    const master = doc === null ? this.keyring.record : doc.key;
    let subkey = subkeys?.get(master);
    if (subkey === undefined) {
      const salt = poolRandom(saltBytes);
      subkey = { salt, key: createHmac('sha256', master).update(salt).digest() };
      subkeys?.set(master, subkey);
    }
    const sealed = gcmSeal(subkey.key, plain, Buffer.concat([Buffer.from(stored), header]));
    return Buffer.concat([header, subkey.salt, sealed]);
  }

  /** The subkey of `key` and `salt`; the last few are remembered (records of one batch share one). */
  private openSubkey(key: KeyObject, salt: Uint8Array): Buffer {
    const memo = this.lastSubkey;
    if (memo !== null && memo.master === key && memo.salt.equals(salt)) return memo.key;
    const out = createHmac('sha256', key).update(salt).digest();
    this.lastSubkey = { master: key, salt: Buffer.from(salt), key: out };
    return out;
  }

  /** Opens a stored record; throws `ERR_STORE_CORRUPT` when it does not authenticate or its document key is gone. */
  private openValue(stored: string, bytes: Uint8Array): Buffer {
    const kind = bytes[0];
    const headerBytes = kind === kindDocument ? 1 + sealDigestBytes : 1;
    let key: KeyObject;
    if (kind === kindRegion) key = this.keyring.record;
    else if (kind === kindDocument) {
      const digest = Buffer.from(bytes.subarray(1, headerBytes)).toString('base64url');
      const entry = this.docKeys.get(digest);
      if (entry === undefined) throw corrupt(stored, 'its document key was shredded or is lost');
      key = entry.key;
    } else throw corrupt(stored, `unknown record kind ${String(kind)}`);
    const salt = bytes.subarray(headerBytes, headerBytes + saltBytes);
    const plain = gcmOpen(
      this.openSubkey(key, salt),
      bytes.subarray(headerBytes + saltBytes),
      Buffer.concat([Buffer.from(stored), bytes.subarray(0, headerBytes)]),
    );
    if (plain === null) throw corrupt(stored, 'it does not authenticate (altered, moved, or sealed under another key)');
    return plain;
  }

  /** Opens a record of a digested family: its plain key and value (the key checked against the stored one). */
  private openDigested(stored: string, bytes: Uint8Array): [string, Buffer] {
    const plain = this.openValue(stored, bytes);
    const length = plain.readUInt16BE(0);
    const key = plain.subarray(2, 2 + length).toString('utf8');
    if (this.storedKey(key) !== stored) throw corrupt(stored, 'its plain key does not match its digest');
    return [key, plain.subarray(2 + length)];
  }

  private async buildIndex(): Promise<void> {
    const keys: string[] = [];
    for (const family of digestedFamilies) {
      for await (const [stored, bytes] of this.options.inner.entries({ gte: `${family}${sep}`, lt: `${family}\u0001` })) {
        try {
          keys.push(this.openDigested(stored, bytes)[0]);
        } catch {
          // A record that does not open (altered, or its document's key lost) stays out of lists and scans;
          // read by its key it reports ERR_STORE_CORRUPT.
        }
      }
    }
    this.index.reset(keys);
  }

  // ------------------------------------------------------------------ the port

  async get(key: string): Promise<Uint8Array | undefined> {
    return (await this.getMany([key]))[0];
  }

  async getMany(keys: readonly string[]): Promise<Array<Uint8Array | undefined>> {
    void this.keyring;
    const out: Array<Uint8Array | undefined> = keys.map(() => undefined);
    // Document secrets and the adapter's own records are never shown to the replica.
    const asked = keys
      .map((key, i) => ({ i, key, stored: isDigested(key) ? this.storedKey(key) : key }))
      .filter(({ key }) => !key.startsWith(secretPrefix) && !key.startsWith(internalPrefix));
    if (asked.length === 0) return out;
    const values = await this.options.inner.getMany(asked.map(({ stored }) => stored));
    asked.forEach(({ i, key, stored }, at) => {
      const bytes = values[at];
      if (bytes !== undefined) out[i] = isDigested(key) ? this.openDigested(stored, bytes)[1] : this.openValue(stored, bytes);
    });
    return out;
  }

  async write(ops: readonly BatchOp[], options: { readonly sync: boolean }): Promise<void> {
    void this.keyring;
    const out: BatchOp[] = [];
    const batch: BatchKeys = { created: [], used: new Set(), pointed: new Set() };
    const subkeys = new Map<KeyObject, Subkey>();
    const usedDigests = new Set<string>();
    const shredded: string[] = [];
    const added: string[] = [];
    const removed: string[] = [];
    for (const op of ops) {
      assert(!op.key.startsWith(internalPrefix), 'the replica wrote a key of sealed storage itself');
      if (op.key.startsWith(secretPrefix)) {
        // Shredding: the pointer goes with the batch; the slot is zeroed once the batch is down.
        assert(op.type === 'del', 'a document secret is only ever deleted');
        const { dataset, key } = splitDoc(op.key);
        const digest = this.docDigest(dataset, key);
        if (this.docKeys.has(digest)) {
          out.push({ type: 'del', key: `${pointerPrefix}${digest}` });
          shredded.push(digest);
        }
        continue;
      }
      if (isDigested(op.key)) {
        const stored = this.storedKey(op.key);
        if (op.type === 'del') {
          out.push({ type: 'del', key: stored });
          removed.push(op.key);
          continue;
        }
        const { dataset, key } = splitDoc(op.key);
        const digest = this.docDigest(dataset, key);
        usedDigests.add(digest);
        const entry = this.docKeyFor(digest, out, batch, options.sync);
        const name = Buffer.from(op.key, 'utf8');
        assert(name.length <= 0xffff, 'stored key too long');
        const head = Buffer.alloc(2);
        head.writeUInt16BE(name.length);
        out.push({ type: 'put', key: stored, value: this.sealValue(stored, Buffer.concat([head, name, op.value]), { digest, key: entry.key }, subkeys) });
        added.push(op.key);
        continue;
      }
      if (op.type === 'del') {
        out.push(op);
        continue;
      }
      const owner = op.key.startsWith(logPrefix) ? logEntryDocument(op.key, op.value) : null;
      if (owner === null) {
        out.push({ type: 'put', key: op.key, value: this.sealValue(op.key, op.value, null, subkeys) });
        continue;
      }
      const digest = this.docDigest(owner.dataset, owner.key);
      usedDigests.add(digest);
      const entry = this.docKeyFor(digest, out, batch, options.sync);
      out.push({ type: 'put', key: op.key, value: this.sealValue(op.key, op.value, { digest, key: entry.key }, subkeys) });
    }
    for (const digest of shredded) assert(!usedDigests.has(digest), 'a batch writes records of a document it shreds');
    // The slots a batch names reach the file before it, with its durability: a batch with `sync` also waits
    // for the fsync of slots written without one.
    const used = [...batch.used];
    await Promise.all(used.map((entry) => entry.written));
    if (options.sync && used.some((entry) => !entry.synced)) {
      await this.options.slots.write([], true);
      for (const entry of used) entry.synced = true;
    }
    await this.options.inner.write(out, options);
    for (const digest of batch.pointed) {
      const entry = this.docKeys.get(digest);
      if (entry !== undefined) entry.committed = true;
    }
    for (const key of removed) this.index.delete(key);
    for (const key of added) this.index.add(key);
    if (shredded.length > 0) await this.zeroSlots(shredded);
  }

  /** Overwrites the slots of shredded documents with zeros, fsynced: their records no longer open. */
  private async zeroSlots(digests: readonly string[]): Promise<void> {
    const slots: number[] = [];
    for (const digest of digests) {
      const entry = this.docKeys.get(digest);
      if (entry === undefined) continue;
      this.docKeys.delete(digest);
      slots.push(entry.slot);
    }
    await this.options.slots.write(
      slots.map((index) => ({ index, bytes: Buffer.alloc(slotBytes) })),
      true,
    );
    this.freeSlots.push(...slots);
    this.freeSlots.sort((a, b) => b - a);
  }

  entries(range: StorageRange): AsyncIterable<[string, Uint8Array]> {
    return this.scan(range, true) as AsyncIterable<[string, Uint8Array]>;
  }

  keys(range: StorageRange): AsyncIterable<string> {
    return this.scan(range, false) as AsyncIterable<string>;
  }

  /** Walks the plain segments from the engine and the digested families from the index, in order. */
  private async *scan(range: StorageRange, values: boolean): AsyncGenerator<[string, Uint8Array] | string> {
    void this.keyring;
    let remaining = range.limit === undefined || range.limit < 0 ? Number.POSITIVE_INFINITY : range.limit;
    const reverse = range.reverse === true;
    const order = reverse ? [...segments].reverse() : segments;
    for (const segment of order) {
      if (remaining <= 0) return;
      const bounds = intersect(range, segment);
      if (bounds === null) continue;
      if (segment.digested) {
        const keys = this.index.range(bounds, remaining, reverse);
        for (let at = 0; at < keys.length; at += sealedFetchRecordsMax) {
          const chunk = keys.slice(at, at + sealedFetchRecordsMax);
          if (!values) {
            for (const key of chunk) {
              remaining--;
              yield key;
            }
            continue;
          }
          const stored = chunk.map((key) => this.storedKey(key));
          const bytes = await this.options.inner.getMany(stored);
          for (let i = 0; i < chunk.length; i++) {
            // Deleted since the index was read: skipped, as a LevelDB iterator would not show it either.
            if (bytes[i] === undefined) continue;
            remaining--;
            yield [chunk[i]!, this.openDigested(stored[i]!, bytes[i]!)[1]];
          }
        }
        continue;
      }
      const query = { ...bounds, reverse, ...(Number.isFinite(remaining) ? { limit: remaining } : {}) };
      if (values) {
        for await (const [stored, bytes] of this.options.inner.entries(query)) {
          remaining--;
          yield [stored, this.openValue(stored, bytes)];
        }
      } else {
        for await (const stored of this.options.inner.keys(query)) {
          remaining--;
          yield stored;
        }
      }
    }
  }

  async clear(range: StorageRange): Promise<void> {
    void this.keyring;
    const ops: BatchOp[] = [];
    for (const segment of segments) {
      const bounds = intersect(range, segment);
      if (bounds === null) continue;
      if (segment.digested) for (const key of this.index.range(bounds, Number.POSITIVE_INFINITY, false)) ops.push({ type: 'del', key });
      else await this.options.inner.clear(bounds);
    }
    if (ops.length > 0) await this.write(ops, { sync: false });
  }

  async compact(range?: { readonly gte: string; readonly lt: string }): Promise<void> {
    void this.keyring;
    if (range === undefined) return this.options.inner.compact();
    for (const segment of segments) {
      const bounds = intersect(range, segment);
      if (bounds === null) continue;
      if (!segment.digested) {
        await this.options.inner.compact({ gte: bounds.gte ?? bounds.gt ?? '', lt: bounds.lt ?? bounds.lte ?? '\u{10ffff}' });
        continue;
      }
      // One dataset of a family: its digest prefix; anything wider: the whole family.
      const family = segment.gte[0]!;
      const start = range.gte.startsWith(`${family}${sep}`) ? range.gte.indexOf(sep, 2) : -1;
      if (start > 0 && compareUtf8(range.lt, `${range.gte.slice(0, start + 1)}\u{10ffff}`) <= 0) {
        const prefix = `${family}${sep}${this.digest(`dataset${sep}${range.gte.slice(2, start)}`)}${sep}`;
        await this.options.inner.compact({ gte: prefix, lt: `${prefix}\u{10ffff}` });
      } else await this.options.inner.compact({ gte: segment.gte, lt: segment.lt! });
    }
  }

  /** Documents with a key (tests and metrics). */
  get documentKeys(): number {
    return this.docKeys.size;
  }
}

interface Segment {
  readonly gte: string;
  readonly lt: string | null;
  readonly digested: boolean;
}

/** The key space in order: plain stretches from the engine, the digested families from the index, the adapter's own records hidden. */
const segments: readonly Segment[] = [
  { gte: '', lt: internalPrefix, digested: false },
  { gte: '\u0002', lt: `d${sep}`, digested: false },
  { gte: `d${sep}`, lt: 'd\u0001', digested: true },
  { gte: 'd\u0001', lt: `h${sep}`, digested: false },
  { gte: `h${sep}`, lt: 'h\u0001', digested: true },
  { gte: 'h\u0001', lt: `x${sep}`, digested: false },
  { gte: `x${sep}`, lt: 'x\u0001', digested: true },
  { gte: 'x\u0001', lt: null, digested: false },
];

/** The part of `range` within `segment`, or null when they do not meet. */
function intersect(range: KeyBounds, segment: Segment): KeyBounds | null {
  const out: { gt?: string; gte?: string; lt?: string; lte?: string } = {};
  const low = range.gt ?? range.gte;
  if (low === undefined || compareUtf8(low, segment.gte) < 0) {
    if (segment.gte !== '') out.gte = segment.gte;
  } else if (range.gt !== undefined) out.gt = range.gt;
  else out.gte = range.gte!;
  const high = range.lt ?? range.lte;
  if (high === undefined || (segment.lt !== null && compareUtf8(high, segment.lt) >= 0)) {
    if (segment.lt !== null) out.lt = segment.lt;
  } else if (range.lt !== undefined) out.lt = range.lt;
  else out.lte = range.lte!;
  const lower = out.gt ?? out.gte ?? '';
  const upper = out.lt ?? out.lte;
  if (upper !== undefined && (compareUtf8(lower, upper) > 0 || (compareUtf8(lower, upper) === 0 && (out.gt !== undefined || out.lt !== undefined))))
    return null;
  return out;
}

function isDigested(key: string): boolean {
  return key.length > 1 && key[1] === sep && (key[0] === 'd' || key[0] === 'h' || key[0] === 'x');
}

/** The dataset of a digested-family key. */
function splitDigested(key: string): { dataset: string } {
  const at = key.indexOf(sep, 2);
  assert(at > 1, 'a digested key names a dataset');
  return { dataset: key.slice(2, at) };
}

/** The document a `d`, `h`, `x` or `k` key belongs to. */
function splitDoc(stored: string): { dataset: string; key: string } {
  const at = stored.indexOf(sep, 2);
  assert(at > 1, 'a document record key names a dataset');
  const rest = stored.slice(at + 1);
  return { dataset: stored.slice(2, at), key: stored[0] === 'x' ? rest.slice(0, rest.lastIndexOf(sep)) : rest };
}

/** The document a delta-log entry belongs to; null for a purge notice (it outlives the purge) or bytes that do not decode. */
function logEntryDocument(stored: string, bytes: Uint8Array): { dataset: string; key: string } | null {
  try {
    const entry = decodeLogEntry(Number.parseInt(stored.slice(logPrefix.length), 16), bytes);
    return entry.kind === 'purge' ? null : { dataset: entry.dataset, key: entry.key };
  } catch {
    return null;
  }
}

/**
 * The data directory at 0700 and its files at 0600: what the engine created under a looser umask is tightened
 * at every open (the daemon also runs with umask 077, so the files LevelDB creates later are 0600 too).
 */
async function keepPrivate(directory: string): Promise<void> {
  await chmod(directory, 0o700);
  for (const entry of await readdir(directory, { withFileTypes: true })) {
    if (!entry.isFile()) continue;
    try {
      await chmod(join(directory, entry.name), 0o600);
    } catch (error) {
      // The engine's background compaction may delete a table between the listing and here: nothing to tighten.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
}

function corrupt(stored: string, why: string): TesseraError {
  return new TesseraError('ERR_STORE_CORRUPT', `sealed record ${JSON.stringify(stored)} cannot be opened: ${why}`);
}
