/**
 * Read-only access to a stopped node's data directory, for `tessera inspect <dir>`.
 *
 * LevelDB cannot open a directory without writing to it: it renames its info log, replays the write-ahead
 * log into a new table and manifest, and deletes the old log — even when the open then fails on the lock.
 * So the directory is never opened. Its files are copied into a temporary directory (table files hard-linked
 * when the file system allows: LevelDB never changes a table file once written, and a link changes no byte
 * and no modification time), and the copy is opened instead and removed on close.
 *
 * A running node holds a POSIX lock on the directory's LOCK file. On Linux, /proc/locks shows it without
 * taking it; it is checked before the copy and again after, so a node that started meanwhile is noticed.
 * Where /proc/locks does not exist the check is skipped: a copy taken while a node writes may then fail to
 * open, which is reported.
 */
import { constants as fsConstants } from 'node:fs';
import { copyFile, link, lstat, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { TesseraError } from '@tessera/core';
import { type StoreMeta, type StoreReader, readStoreMeta } from './inspect.js';
import { sealFileName } from './storage/seal-keys.js';
import { sealedLevelStorage } from './storage/sealed.js';

/** An open read-only snapshot of a data directory. */
export interface DataDirectorySnapshot {
  /** The data directory (as given). */
  readonly path: string;
  readonly meta: StoreMeta;
  readonly reader: StoreReader;
  /** Closes the snapshot and removes its temporary copy. */
  close(): Promise<void>;
}

/** Files of a LevelDB directory that are not data: the lock and the info logs. */
const notData = new Set(['LOCK', 'LOG', 'LOG.old']);
/** Files LevelDB never rewrites once written: safe to hard-link. */
const immutableFile = /\.(ldb|sst)$/;

/**
 * Opens a snapshot of the data directory at `path` without writing to it. Throws `ERR_STORE_NOT_FOUND` for a
 * missing directory, `ERR_STORE_LOCKED` while a node has it open, and `ERR_STORE_FORMAT` for anything that is
 * not a Tessera data directory of this format version. A sealed directory (storage/sealed.ts) needs its master
 * key (`ERR_SEAL_KEY_MISSING` without it); the copy is opened through sealed storage.
 */
export async function openDataDirectorySnapshot(path: string, options: { readonly masterKey?: Uint8Array } = {}): Promise<DataDirectorySnapshot> {
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT')
      throw new TesseraError(
        'ERR_STORE_NOT_FOUND',
        `data directory ${path} does not exist: give the data directory of a node (its \`data:\` in the cluster config)`,
      );
    throw new TesseraError('ERR_STORE_IO', `data directory ${path}: ${error.code ?? error.message}`, { cause: error });
  });
  if (!info.isDirectory()) throw new TesseraError('ERR_STORE_FORMAT', `${path} is not a directory: give the data directory of a node`);
  const names = await readdir(path).catch((error: NodeJS.ErrnoException) => {
    throw new TesseraError('ERR_STORE_IO', `data directory ${path} cannot be listed: ${error.code ?? error.message}`, { cause: error });
  });
  if (!names.includes('CURRENT')) {
    throw new TesseraError('ERR_STORE_FORMAT', `${path} is not a Tessera data directory: it holds no LevelDB (no CURRENT file)`);
  }
  await checkUnlocked(path);
  const sealed = names.includes(sealFileName);
  if (sealed && options.masterKey === undefined) {
    throw new TesseraError(
      'ERR_SEAL_KEY_MISSING',
      `data directory ${path} is sealed: name its master key file in TESSERA_MASTER_KEY_FILE, or inspect the running node with --url`,
    );
  }
  const copy = await mkdtemp(join(tmpdir(), 'tessera-inspect-'));
  try {
    for (const name of names) {
      if (notData.has(name)) continue;
      const from = join(path, name);
      // lstat, not stat: a symlink planted in a data directory (to /etc/shadow, to another node's files) is
      // skipped, never followed into the copy; LevelDB writes regular files only.
      if (!(await lstat(from)).isFile()) continue;
      const to = join(copy, name);
      if (immutableFile.test(name)) {
        // Another file system, or one without hard links: copy (a reflink where the file system has them).
        await link(from, to).catch(() => copyFile(from, to, fsConstants.COPYFILE_FICLONE));
      } else {
        await copyFile(from, to, fsConstants.COPYFILE_FICLONE);
      }
    }
    await checkUnlocked(path);
    if (sealed) return await openSealedCopy(path, copy, options.masterKey!);
    const db = new ClassicLevel<string, Uint8Array>(copy, { keyEncoding: 'utf8', valueEncoding: 'view', createIfMissing: false });
    try {
      await db.open();
    } catch (error) {
      throw new TesseraError(
        'ERR_STORE_FORMAT',
        `${path} is not a readable LevelDB (was a node writing to it while it was read?): ${(error as { cause?: Error }).cause?.message ?? (error as Error).message}`,
        { cause: error },
      );
    }
    try {
      const meta = await readStoreMeta(db, `data directory ${path}`);
      return {
        path,
        meta,
        reader: db,
        close: async () => {
          await db.close();
          await rm(copy, { recursive: true, force: true });
        },
      };
    } catch (error) {
      await db.close();
      throw error;
    }
  } catch (error) {
    await rm(copy, { recursive: true, force: true });
    if (error instanceof TesseraError) throw error;
    throw new TesseraError('ERR_STORE_IO', `data directory ${path} could not be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {
      cause: error,
    });
  }
}

/** The copy of a sealed directory, opened with its master key (the copy is removed on close). */
async function openSealedCopy(path: string, copy: string, masterKey: Uint8Array): Promise<DataDirectorySnapshot> {
  const storage = sealedLevelStorage(copy, masterKey);
  await storage.open();
  const reader: StoreReader = { get: (key) => storage.get(key), iterator: (range) => storage.entries(range), keys: (range) => storage.keys(range) };
  try {
    const meta = await readStoreMeta(reader, `data directory ${path}`);
    return {
      path,
      meta,
      reader,
      close: async () => {
        await storage.close();
        await rm(copy, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await storage.close();
    throw error;
  }
}

/** Throws `ERR_STORE_LOCKED` when a process holds the directory's LevelDB lock. */
async function checkUnlocked(path: string): Promise<void> {
  const holder = await lockHolder(join(path, 'LOCK'));
  if (holder !== null) {
    throw new TesseraError(
      'ERR_STORE_LOCKED',
      `data directory ${path} is in use by a running node (process ${holder}): stop the node to inspect its directory, or inspect the running node with --url http://<its listen address>`,
    );
  }
}

/**
 * The process id holding a POSIX or open-file-description lock on `lockFile`, per /proc/locks; null when none
 * does, when there is no lock file, or when /proc/locks does not exist (not Linux).
 */
export async function lockHolder(lockFile: string): Promise<number | null> {
  let file;
  try {
    file = await stat(lockFile, { bigint: true });
  } catch {
    return null;
  }
  let locks: string;
  try {
    locks = await readFile('/proc/locks', 'utf8');
  } catch {
    return null;
  }
  // Linux's encoding of a device number into major and minor (as glibc's gnu_dev_major/minor).
  const dev = file.dev;
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  // "1: POSIX  ADVISORY  WRITE 4321 fe:00:2146389 0 EOF" (lines with "->" are waiters, not holders).
  const line = /^\d+:\s+(?:POSIX|OFDLCK)\s+\S+\s+\S+\s+(-?\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/;
  for (const text of locks.split('\n')) {
    const match = line.exec(text);
    if (match === null) continue;
    if (BigInt(`0x${match[2]}`) === major && BigInt(`0x${match[3]}`) === minor && BigInt(match[4]!) === file.ino) return Number(match[1]);
  }
  return null;
}
