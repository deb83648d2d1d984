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

/** Opens a replica in a temp directory; closed when the test ends. */
export async function openReplica(
  t: { teardown(fn: () => unknown): void },
  options: Partial<ReplicaOptions> = {},
): Promise<Replica> {
  const path = options.path ?? join(await tempDir(t), options.node ?? 'n1');
  const replica = await Replica.open({ node: 'n1', region: 'eu-west', durability: 'os', ...options, path });
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
