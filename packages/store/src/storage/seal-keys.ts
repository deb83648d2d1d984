/**
 * The keys of sealed storage (sealed.ts), node:crypto only:
 *
 *   master key     32 random bytes the operator keeps outside the data directory (a file, mode 0600, or an
 *                  environment variable); it only wraps the data key.
 *   data key       32 random bytes per data directory (per region's node), kept wrapped under the master key in
 *                  `<dir>/seal.json`; records that belong to no document are sealed under a key derived from it,
 *                  and it wraps the document keys. Rotating the master key rewraps it (`rotateMasterKey`).
 *   document keys  32 random bytes per document, wrapped under the data key, each in a fixed-size slot of
 *                  `<dir>/seal.keys` (slots.ts): a purge overwrites the slot in place, so the document's records
 *                  are unreadable from the disk at once, whatever LevelDB keeps until it compacts.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { type FileHandle, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { TesseraError, assert } from '@tessera/core';

/** AES-256-GCM: key, nonce and tag sizes in bytes. */
export const sealKeyBytes = 32;
export const sealNonceBytes = 12;
export const sealTagBytes = 16;
/** A master key file, in bytes (base64 or hex text of 32 bytes, with a trailing newline at most). */
export const masterKeyFileBytesMax = 4096;
/** The file that holds the wrapped data key, in the data directory. */
export const sealFileName = 'seal.json';
/** The slot file of document keys, in the data directory. */
export const slotsFileName = 'seal.keys';
const sealFileFormat = 1;
const wrapInfo = 'tessera/seal/master-wrap v1';
const keyIdInfo = 'tessera/seal/master-id v1';

/** Reads 32 key bytes from text: base64 (44 characters) or hex (64); throws `ERR_SEAL_KEY_INVALID` naming `where`. */
export function parseMasterKey(text: string, where: string): Buffer {
  const trimmed = text.trim();
  const bytes = /^[0-9a-fA-F]{64}$/.test(trimmed)
    ? Buffer.from(trimmed, 'hex')
    : /^[A-Za-z0-9+/_-]{43}=?$/.test(trimmed)
      ? Buffer.from(trimmed, 'base64')
      : null;
  if (bytes === null || bytes.length !== sealKeyBytes) {
    throw new TesseraError(
      'ERR_SEAL_KEY_INVALID',
      `${where}: a master key is ${sealKeyBytes} random bytes as base64 (44 characters) or hex (64), got ${trimmed.length} characters`,
    );
  }
  return bytes;
}

/** A new master key as the text a key file holds (base64 and a newline). */
export function newMasterKeyText(): string {
  return `${randomBytes(sealKeyBytes).toString('base64')}\n`;
}

/** Throws `ERR_FILE_MODE` unless `mode` lets its owner only read or write the file (0600, 0400). */
export function checkOwnerOnly(mode: number, path: string, what: string): void {
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    throw new TesseraError(
      'ERR_FILE_MODE',
      `${path}: the ${what} has mode ${(mode & 0o777).toString(8).padStart(4, '0')}: group or others may read or change it; allowed: 0600 or 0400 (chmod 600 ${path})`,
    );
  }
}

/** Reads a master key file: refused (`ERR_FILE_MODE`) when group or others may read it. */
export async function readMasterKeyFile(path: string): Promise<Buffer> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw new TesseraError('ERR_SEAL_KEY_INVALID', `master key file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {
      cause: error,
    });
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new TesseraError('ERR_SEAL_KEY_INVALID', `master key file ${path} is not a regular file`);
    checkOwnerOnly(stats.mode, path, 'master key file');
    if (stats.size > masterKeyFileBytesMax) {
      throw new TesseraError('ERR_SEAL_KEY_INVALID', `master key file ${path} holds ${stats.size} bytes; at most ${masterKeyFileBytesMax}`);
    }
    return parseMasterKey((await handle.readFile()).toString('utf8'), `master key file ${path}`);
  } finally {
    await handle.close();
  }
}

/** The environment variable that names a master key file (the daemon's config can name one too). */
export const masterKeyFileEnv = 'TESSERA_MASTER_KEY_FILE';

/** The master key named by $TESSERA_MASTER_KEY_FILE, for offline tools: `{}` when unset. */
export async function masterKeyFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<{ masterKey?: Buffer }> {
  const path = env[masterKeyFileEnv];
  return path === undefined || path === '' ? {} : { masterKey: await readMasterKeyFile(path) };
}

/** Writes a new master key file (mode 0600, refusing to overwrite one); returns its key. */
export async function createMasterKeyFile(path: string): Promise<Buffer> {
  const text = newMasterKeyText();
  const handle = await open(path, 'wx', 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return parseMasterKey(text, path);
}

/** HKDF-SHA256 of `key` for one purpose. */
export function deriveKey(key: Uint8Array, info: string, bytes = sealKeyBytes): Buffer {
  return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), info, bytes));
}

/** Random bytes drawn at a time: one call to the CSPRNG serves many records (each call costs microseconds). */
export const randomPoolBytes = 16 * 1024;
let pool = Buffer.alloc(0);
let poolAt = 0;

/** `count` fresh random bytes from the pool (a new pool buffer when it runs out: views handed out stay valid). */
export function poolRandom(count: number): Buffer {
  assert(count <= randomPoolBytes, 'random draw over the pool size');
  if (poolAt + count > pool.length) {
    pool = randomBytes(randomPoolBytes);
    poolAt = 0;
  }
  const out = pool.subarray(poolAt, poolAt + count);
  poolAt += count;
  return out;
}

/** AES-256-GCM: `nonce | ciphertext | tag`, with a fresh random 96-bit nonce. */
export function gcmSeal(key: Uint8Array, plain: Uint8Array, aad: Uint8Array): Buffer {
  const nonce = poolRandom(sealNonceBytes);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]);
}

/** Opens `gcmSeal`'s output; null when it does not authenticate (another key, another AAD, altered bytes). */
export function gcmOpen(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Buffer | null {
  if (sealed.length < sealNonceBytes + sealTagBytes) return null;
  const nonce = sealed.subarray(0, sealNonceBytes);
  const tag = sealed.subarray(sealed.length - sealTagBytes);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(sealed.subarray(sealNonceBytes, sealed.length - sealTagBytes)), decipher.final()]);
  } catch {
    return null;
  }
}

/** A short public fingerprint of a master key: which key a data directory wants, never the key. */
export function masterKeyId(master: Uint8Array): string {
  return createHmac('sha256', master).update(keyIdInfo).digest('base64url').slice(0, 16);
}

interface SealFile {
  readonly format: number;
  /** Fingerprint of the master key that wraps `dataKey`. */
  readonly masterKeyId: string;
  /** The data key wrapped under the master key: base64 of nonce | ciphertext | tag. */
  readonly dataKey: string;
}

/** Reads `<dir>/seal.json`; undefined when absent. */
async function readSealFile(dir: string): Promise<SealFile | undefined> {
  const path = join(dir, sealFileName);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TesseraError('ERR_STORE_IO', `${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
  try {
    const file = JSON.parse(text) as SealFile;
    if (file.format !== sealFileFormat || typeof file.dataKey !== 'string' || typeof file.masterKeyId !== 'string') throw new Error('unknown shape');
    return file;
  } catch (error) {
    throw new TesseraError('ERR_STORE_FORMAT', `${path}: not a seal file of format ${sealFileFormat} (${(error as Error).message})`);
  }
}

/** True when the data directory at `dir` is sealed (holds a wrapped data key). */
export async function isSealedDirectory(dir: string): Promise<boolean> {
  try {
    await stat(join(dir, sealFileName));
    return true;
  } catch {
    return false;
  }
}

/** Writes `<dir>/seal.json` atomically (a temporary file, fsync, rename, fsync of the directory), mode 0600. */
async function writeSealFile(dir: string, file: SealFile): Promise<void> {
  const path = join(dir, sealFileName);
  const temporary = `${path}.tmp`;
  await unlink(temporary).catch(() => undefined);
  const handle = await open(temporary, 'wx', 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(file)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, path);
  await syncDirectory(dirname(path));
}

/** Makes a rename or a file creation in `dir` durable. */
export async function syncDirectory(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function wrapDataKey(master: Uint8Array, dataKey: Uint8Array): SealFile {
  const sealed = gcmSeal(deriveKey(master, wrapInfo), dataKey, Buffer.from(wrapInfo));
  return { format: sealFileFormat, masterKeyId: masterKeyId(master), dataKey: sealed.toString('base64') };
}

function unwrapDataKey(master: Uint8Array, file: SealFile, where: string): Buffer {
  const key = gcmOpen(deriveKey(master, wrapInfo), Buffer.from(file.dataKey, 'base64'), Buffer.from(wrapInfo));
  if (key === null || key.length !== sealKeyBytes) {
    throw new TesseraError(
      'ERR_SEAL_KEY_WRONG',
      `${where}: the master key given (id ${masterKeyId(master)}) does not unwrap the data key, which was wrapped by master key id ${file.masterKeyId}`,
    );
  }
  return key;
}

/**
 * The data key of the data directory at `dir`, unwrapped with `master`; a new one (written wrapped) when the
 * directory has none and `create`. Throws `ERR_SEAL_KEY_WRONG` for another master key.
 */
export async function loadDataKey(dir: string, master: Uint8Array, create: boolean): Promise<Buffer | undefined> {
  assert(master.length === sealKeyBytes, 'master key length');
  const file = await readSealFile(dir);
  if (file !== undefined) return unwrapDataKey(master, file, join(dir, sealFileName));
  if (!create) return undefined;
  const dataKey = randomBytes(sealKeyBytes);
  await writeSealFile(dir, wrapDataKey(master, dataKey));
  return dataKey;
}

/**
 * Rotates the master key of the data directory at `dir`: the data key is unwrapped with `current` and written
 * wrapped under `next`, atomically. Records are not rewritten (they are sealed under the data key and the
 * document keys); the old master key no longer opens the directory. Safe while the store is open.
 */
export async function rotateMasterKey(dir: string, current: Uint8Array, next: Uint8Array): Promise<{ from: string; to: string }> {
  const file = await readSealFile(dir);
  if (file === undefined) throw new TesseraError('ERR_SEAL_KEY_MISSING', `${dir} is not a sealed data directory (no ${sealFileName})`);
  const dataKey = unwrapDataKey(current, file, join(dir, sealFileName));
  await writeSealFile(dir, wrapDataKey(next, dataKey));
  return { from: masterKeyId(current), to: masterKeyId(next) };
}

/** Constant-time equality of two digests. */
export function sameDigest(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** SHA-256 (for tests and fingerprints). */
export function sha256(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}
