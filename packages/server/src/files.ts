/**
 * Files that hold secrets (the cluster secret, TLS keys, the tokens file): refused when others may read or
 * write them, as ssh does with a private key. A key readable by another local account is a key that account has.
 */
import { type Stats, fstatSync, openSync, closeSync } from 'node:fs';
import { TesseraError } from '@tessera/core';

/** Throws `ERR_CONFIG_INVALID` unless `stats` is a regular file that only its owner may read or write (0600, 0400). */
export function checkPrivateFile(stats: Stats, path: string, what: string): void {
  if (!stats.isFile()) throw new TesseraError('ERR_CONFIG_INVALID', `${path}: the ${what} is not a regular file`);
  if (process.platform !== 'win32' && (stats.mode & 0o077) !== 0) {
    throw new TesseraError(
      'ERR_CONFIG_INVALID',
      `${path}: the ${what} has mode ${(stats.mode & 0o777).toString(8).padStart(4, '0')}: others may read or change it; allow its owner only (chmod 600 ${path})`,
    );
  }
}

/** Checks a file by path (see `checkPrivateFile`). */
export function checkPrivateFilePath(path: string, what: string): void {
  const fd = openSync(path, 'r');
  try {
    checkPrivateFile(fstatSync(fd), path, what);
  } finally {
    closeSync(fd);
  }
}
