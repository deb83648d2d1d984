// Goal (issue 12 part 4): `tessera keys create` writes a 0600 master key file and never overwrites one; `tessera
// keys rotate` rewraps sealed data directories under a new key, after which the new key opens them and the old
// one does not; `tessera inspect` reads a stopped sealed directory with $TESSERA_MASTER_KEY_FILE and refuses it
// with a code without; a dev cluster's layout gets a master key file and names it in every node's config.
// Method: the CLI in-process (runCli) on a temp directory; an embedded replica writes the sealed directory.
import t from 'tap';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareDevSecurity, runCli } from '@tessera/cli';
import { Replica } from '@tessera/store';

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(
    args,
    (line) => out.push(line),
    (line) => err.push(line),
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

t.test('keys create and rotate; inspect of a sealed directory', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-keys-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const [oldKey, newKey, data] = [join(dir, 'old.key'), join(dir, 'new.key'), join(dir, 'data')];
  const created = await cli(['keys', 'create', '--file', oldKey]);
  t.equal(created.code, 0, created.err);
  t.match(created.out, /created master key [A-Za-z0-9_-]{16} in /);
  t.equal((await stat(oldKey)).mode & 0o777, 0o600, 'the key file is 0600');
  const before = await readFile(oldKey, 'utf8');
  const again = await cli(['keys', 'create', '--file', oldKey]);
  t.not(again.code, 0, 'an existing key file is never overwritten');
  t.equal(await readFile(oldKey, 'utf8'), before);
  t.equal((await cli(['keys', 'create', '--file', newKey])).code, 0);

  const replica = await Replica.open({ path: data, node: 'n1', region: 'eu-west', durability: 'os', encryption: { masterKeyFile: oldKey } });
  await replica.put('users', 'u1', { name: 'Ada' });
  await replica.close();

  const refused = await cli(['inspect', data, 'summary']);
  t.not(refused.code, 0);
  t.match(refused.err, /ERR_SEAL_KEY_MISSING|is sealed/, 'inspect without the key names the reason');
  process.env.TESSERA_MASTER_KEY_FILE = oldKey;
  t.teardown(() => delete process.env.TESSERA_MASTER_KEY_FILE);
  const summary = await cli(['inspect', data, 'keys', 'users']);
  t.equal(summary.code, 0, summary.err);
  t.match(summary.out, /u1/, 'inspect reads the sealed directory with the key');

  const rotated = await cli(['keys', 'rotate', '--from', oldKey, '--to', newKey, data]);
  t.equal(rotated.code, 0, rotated.err);
  t.match(rotated.out, /data key rewrapped from master key \S+ to \S+/);
  t.equal((await cli(['inspect', data, 'keys', 'users'])).code === 0, false, 'the old key no longer opens it');
  process.env.TESSERA_MASTER_KEY_FILE = newKey;
  t.match((await cli(['inspect', data, 'keys', 'users'])).out, /u1/, 'the new key does');
  const reopened = await Replica.open({ path: data, node: 'n1', region: 'eu-west', durability: 'os', encryption: { masterKeyFile: newKey } });
  t.same((await reopened.get('users', 'u1'))?.value, { name: 'Ada' });
  await reopened.close();
});

t.test('a new dev cluster gets a 0600 master key; one whose data predates it does not', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-devkey-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const fresh = await prepareDevSecurity(join(dir, 'fresh'), 'dev', [{ id: 'eu-west-1', region: 'eu-west' }]);
  t.equal(fresh.masterKeyFile, join(dir, 'fresh', 'master.key'));
  t.equal((await stat(fresh.masterKeyFile!)).mode & 0o777, 0o600);
  const reused = await prepareDevSecurity(join(dir, 'fresh'), 'dev', [{ id: 'eu-west-1', region: 'eu-west' }]);
  t.equal(await readFile(reused.masterKeyFile!, 'utf8'), await readFile(fresh.masterKeyFile!, 'utf8'), 'the next start reuses it');
  const { mkdir } = await import('node:fs/promises');
  await mkdir(join(dir, 'old', 'data'), { recursive: true });
  const old = await prepareDevSecurity(join(dir, 'old'), 'dev', [{ id: 'eu-west-1', region: 'eu-west' }]);
  t.equal(old.masterKeyFile, null, 'unsealed data is left unsealed');
});
