// Goal (issue 12 item 6): `tessera inspect` prints no escape sequence or bidirectional control that stored data
// holds (they are shown escaped), refuses an answer that is not a node's, and never follows a symlink planted in
// a data directory when it snapshots it.
// Method: a replica written in a temp directory and closed, then the CLI in-process (runCli) on it; a copy of
// the directory made of symlinks; a fake node answering garbage.
import t from 'tap';
import { createServer } from 'node:http';
import { mkdir, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '@tessera/cli';
import { Replica } from '@tessera/store';
import { terminalSafe } from '../src/terminal-text.js';

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

const hostile = 'red \u001b[31mALERT\u001b[0m \u001b]8;;http://evil.example\u0007link\u001b]8;;\u0007 \u202eevil\u202c \u009b2J';

t.test('terminalSafe escapes C0, C1 and bidi controls, keeps line feeds and tabs', async (t) => {
  t.equal(terminalSafe(hostile), 'red \\u001b[31mALERT\\u001b[0m \\u001b]8;;http://evil.example\\u0007link\\u001b]8;;\\u0007 \\u202eevil\\u202c \\u009b2J');
  t.equal(terminalSafe('a\tb\nc'), 'a\tb\nc');
  t.equal(JSON.parse(terminalSafe(JSON.stringify({ v: hostile }))).v, hostile, 'escaped JSON is the same JSON');
});

t.test('inspect of a data directory: stored escape sequences and bidi controls are printed escaped', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-inspect-safety-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const data = join(dir, 'eu-west-1');
  const replica = await Replica.open({ path: data, node: 'eu-west-1', region: 'eu-west', durability: 'os' });
  await replica.put('notes', 'n1', { text: hostile });
  await replica.close();
  for (const args of [
    ['doc', 'notes', 'n1'],
    ['doc', 'notes', 'n1', '--json'],
    ['log', '--values'],
    ['log', '--values', '--json'],
  ]) {
    const answer = await cli(['inspect', data, ...args]);
    t.equal(answer.code, 0, `${args.join(' ')}: ${answer.err}`);
    t.notMatch(answer.out, /[\u001b\u0007\u009b\u202e\u202c]/, `${args.join(' ')}: no raw control or bidi character`);
    t.match(answer.out, /\\u001b\[31mALERT/, `${args.join(' ')}: shown escaped`);
  }

  // A directory of symlinks to the real files: followed, it would show the real data; skipped, there is nothing.
  const planted = join(dir, 'planted');
  await mkdir(planted);
  for (const name of await readdir(data)) await symlink(join(data, name), join(planted, name));
  const answer = await cli(['inspect', planted, 'keys', 'notes']);
  t.equal(answer.code, 1, 'a directory of symlinks is no data directory');
  t.match(answer.err, /ERR_STORE_FORMAT/);
  t.notMatch(answer.out, /n1/, 'nothing behind the symlinks was read');
});

t.test("inspect --url refuses an answer that is not a node's", async (t) => {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(req.url?.startsWith('/v1/inspect/keys') ? '{"node":"x","region":"y","items":"\\u001b[2J"}' : '[1,2,3]');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const summary = await cli(['inspect', '--url', url, 'summary']);
  t.equal(summary.code, 1);
  t.match(summary.err, /ERR_DECODE: the answer of \/v1\/inspect\/summary is not what a Tessera node sends: not a JSON object/);
  const keys = await cli(['inspect', '--url', url, 'keys', 'notes']);
  t.match(keys.err, /items is not a list/);
});
