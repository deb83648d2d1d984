/** Test helpers: temporary data directories and replicas that clean up after themselves. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Replica, type ReplicaOptions } from '@tessera/store';

/** A temp directory removed when the test ends. */
export async function tempDir(t: { teardown(fn: () => unknown): void }, name = 'tessera-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), name));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * With TESSERA_TEST_SEALED=1, replicas that tests open in a directory are sealed (storage/sealed.ts): the
 * replica suites then run over sealed storage too.
 */
export function sealedByEnv(options: Partial<ReplicaOptions> = {}): Partial<ReplicaOptions> {
  if (process.env.TESSERA_TEST_SEALED !== '1' || options.storage !== undefined || options.encryption !== undefined) return {};
  return { encryption: { masterKey: Buffer.alloc(32, 7) } };
}

/** The snapshot options that open what `sealedByEnv` sealed. */
export function snapshotKeyByEnv(): { masterKey?: Uint8Array } {
  return process.env.TESSERA_TEST_SEALED === '1' ? { masterKey: Buffer.alloc(32, 7) } : {};
}

/** Tests that write raw LevelDB records by hand do not apply to sealed directories (sealed.test.ts covers tampering there). */
export const rawRecordsSkip = process.env.TESSERA_TEST_SEALED === '1' ? 'writes raw records; sealed directories authenticate every record' : false;

/** Opens a replica in a temp directory; closed when the test ends. */
export async function openReplica(t: { teardown(fn: () => unknown): void }, options: Partial<ReplicaOptions> = {}): Promise<Replica> {
  const path = options.path ?? join(await tempDir(t), options.node ?? 'n1');
  const replica = await Replica.open({ node: 'n1', region: 'eu-west', durability: 'os', ...sealedByEnv(options), ...options, path });
  t.teardown(() => replica.close());
  return replica;
}

/** Copies every delta `from` logged after `cursor` into `to`; returns the new cursor. */
export async function syncOnce(from: Replica, to: Replica, cursor = 0): Promise<number> {
  for (;;) {
    const { entries } = await from.deltasSince(cursor, { limit: 200 });
    if (entries.length === 0) return cursor;
    await to.applyDeltas(entries);
    cursor = entries[entries.length - 1]!.seq;
  }
}
