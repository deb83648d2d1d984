/** `Replica.open`'s `encryption` option: a sealed LevelDB at `path`, or a refusal that names why. */
import { TesseraError } from '@tessera/core';
import { type ReplicaOptions } from '../types.js';
import { isSealedDirectory, parseMasterKey, readMasterKeyFile, sealKeyBytes } from './seal-keys.js';
import { sealedLevelStorage } from './sealed.js';

/**
 * The options with `storage` set to sealed storage at `path` when `encryption` is given. Without it, a sealed
 * directory is refused (`ERR_SEAL_KEY_MISSING`) rather than read as garbage.
 */
export async function withSealing(options: ReplicaOptions): Promise<ReplicaOptions> {
  if (typeof options !== 'object' || options === null) return options;
  const encryption = options.encryption ?? null;
  const path = typeof options.path === 'string' && options.path.length > 0 && options.storage === undefined ? options.path : null;
  if (encryption === null) {
    if (path !== null && (await isSealedDirectory(path))) {
      throw new TesseraError('ERR_SEAL_KEY_MISSING', `data directory ${path} is sealed: open it with a master key (encryption.masterKey or masterKeyFile)`);
    }
    return options;
  }
  if (path === null) {
    throw new TesseraError('ERR_OPTION_INVALID', 'Replica.open: encryption needs a path (wrap a storage of your own with sealedStorage instead)');
  }
  let masterKey: Uint8Array;
  if ('masterKeyFile' in encryption && typeof encryption.masterKeyFile === 'string') masterKey = await readMasterKeyFile(encryption.masterKeyFile);
  else if ('masterKey' in encryption && encryption.masterKey instanceof Uint8Array) {
    if (encryption.masterKey.length !== sealKeyBytes) {
      throw new TesseraError(
        'ERR_SEAL_KEY_INVALID',
        `Replica.open: encryption.masterKey has ${encryption.masterKey.length} bytes; a master key has ${sealKeyBytes}`,
      );
    }
    masterKey = encryption.masterKey;
  } else if ('masterKey' in encryption && typeof encryption.masterKey === 'string')
    masterKey = parseMasterKey(encryption.masterKey, 'Replica.open: encryption.masterKey');
  else throw new TesseraError('ERR_OPTION_INVALID', 'Replica.open: encryption must be { masterKey } or { masterKeyFile }');
  return { ...options, storage: sealedLevelStorage(path, masterKey) };
}
