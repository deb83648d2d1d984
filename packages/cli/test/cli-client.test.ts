// Goal: the CLI reaches the node a user means and presents the credentials the user gave: `$TESSERA_URL` when
// no --url is given; a bearer token from --token, --token-file, $TESSERA_TOKEN or $TESSERA_TOKEN_FILE, checked
// and never echoed. Its output survives a reader that stops early (`| head -1`), and `--help` and `--version`
// load nothing but the command line parser.
// Method: a stand-in node (node:http) that records each request's path and Authorization header and answers
// list pages without end; the CLI in-process (runCli) for options, as a real process (the tesseradb bin shim)
// for pipes, and with module hooks that log every module it resolves.
import t from 'tap';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '@tessera/cli';

const shim = fileURLToPath(new URL('../../tessera/bin/tessera.js', import.meta.url));
const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
const hooks = new URL('./fixtures/log-resolve.mjs', import.meta.url).href;

interface Seen {
  readonly path: string;
  readonly authorization: string | undefined;
}

/** A stand-in node: every list page holds 1,000 documents and a cursor; every other request gets one fixed body. */
async function standIn(t: { teardown(fn: () => unknown): void }): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    seen.push({ path: req.url ?? '', authorization: req.headers.authorization });
    res.setHeader('content-type', 'application/json');
    if (req.url?.startsWith('/v1/kv/catalog?')) {
      res.end(JSON.stringify({ items: Array.from({ length: 1000 }, (_, i) => ({ key: `k${i}`, type: 'map', value: { i }, tags: [] })), cursor: 'next' }));
    } else {
      // One body with the fields each command here reads.
      res.end(
        JSON.stringify({
          node: 'stand-in-1',
          region: 'eu-west',
          value: { ok: true },
          history: [],
          links: [],
          cursors: [],
          frontiers: [],
          results: [{ seq: 1, token: 's' }],
        }),
      );
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

async function cli(args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(
    args,
    (line) => out.push(line),
    (line) => err.push(line),
  );
  return { code, out, err };
}

/** Runs a shell command line; resolves with its exit code and output. */
function shell(line: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', line], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Sets environment variables for the length of a test. */
function withEnv(t: { teardown(fn: () => unknown): void }, vars: Record<string, string | undefined>): void {
  const before = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]));
  const set = (values: Record<string, string | undefined>) => {
    for (const [name, value] of Object.entries(values)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
  set(vars);
  t.teardown(() => set(before));
}

t.test('TESSERA_URL is the default node; --url wins over it', async (t) => {
  const node = await standIn(t);
  withEnv(t, { TESSERA_URL: node.url, TESSERA_TOKEN: undefined, TESSERA_TOKEN_FILE: undefined });
  t.equal((await cli(['get', 'catalog', 'lamp'])).code, 0);
  t.equal(node.seen.at(-1)?.path, '/v1/kv/catalog/lamp', 'the request went to $TESSERA_URL');
  t.equal(node.seen.at(-1)?.authorization, undefined, 'no token given, no Authorization header');
  const other = await cli(['get', 'catalog', 'lamp', '--url', 'http://127.0.0.1:1']);
  t.match(other.err.join('\n'), /GET http:\/\/127\.0\.0\.1:1: cannot reach the node/, '--url wins');
  t.equal((await cli(['policy', 'history'])).code, 0, 'policy history');
  t.equal(node.seen.at(-1)?.path, '/v1/policy/history', 'other commands use it too');
});

t.test('a bearer token from each source, sent as Authorization', async (t) => {
  const node = await standIn(t);
  const dir = await mkdtemp(join(tmpdir(), 'tessera-token-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'token');
  await writeFile(file, 'from-file\n');
  withEnv(t, { TESSERA_URL: node.url, TESSERA_TOKEN: undefined, TESSERA_TOKEN_FILE: undefined });
  const sent = async (args: string[]) => {
    const result = await cli(args);
    t.equal(result.code, 0, `tessera ${args.join(' ')}: ${result.err.join(' ')}`);
    return node.seen.at(-1)?.authorization;
  };
  t.equal(await sent(['get', 'catalog', 'lamp', '--token', 'from-flag']), 'Bearer from-flag', '--token');
  t.equal(await sent(['get', 'catalog', 'lamp', '--token-file', file]), 'Bearer from-file', '--token-file, its newline trimmed');
  process.env.TESSERA_TOKEN = 'from-env';
  t.equal(await sent(['list', 'catalog', '--limit', '1']), 'Bearer from-env', '$TESSERA_TOKEN');
  t.equal(await sent(['get', 'catalog', 'lamp', '--token', 'from-flag']), 'Bearer from-flag', 'a flag wins over the environment');
  delete process.env.TESSERA_TOKEN;
  process.env.TESSERA_TOKEN_FILE = file;
  t.equal(await sent(['status', '--node-only', '--json']), 'Bearer from-file', '$TESSERA_TOKEN_FILE');
  t.equal(await sent(['increment', 'visits', 'home']), 'Bearer from-file', 'operations send it');
  t.equal(await sent(['inspect', 'peers', '--json']), 'Bearer from-file', 'inspect on a node sends it');
  delete process.env.TESSERA_TOKEN_FILE;

  const refused: Array<[string[], RegExp]> = [
    [['--token', 'a', '--token-file', file], /ERR_OPTION_INVALID: give --token or --token-file, not both/],
    [['--token', 'has space'], /ERR_OPTION_INVALID: --token: the token has a space, control or non-ASCII character at position 3/],
    [['--token', 'x'.repeat(4097)], /a token of 4097 characters exceeds the limit of 4096/],
    [['--token-file', join(dir, 'missing')], /--token-file ".*missing": cannot read the token file \(ENOENT\)/],
  ];
  const requests = node.seen.length;
  for (const [options, message] of refused) {
    const result = await cli(['get', 'catalog', 'lamp', ...options]);
    t.equal(result.code, 1);
    t.match(result.err.join('\n'), message);
    t.notMatch(result.err.join('\n'), /has space|xxxx/, 'the token is never echoed');
  }
  await writeFile(join(dir, 'empty'), '\n');
  t.match((await cli(['get', 'catalog', 'lamp', '--token-file', join(dir, 'empty')])).err.join('\n'), /the token is empty/);
  process.env.TESSERA_TOKEN = 'a';
  process.env.TESSERA_TOKEN_FILE = file;
  t.match((await cli(['get', 'catalog', 'lamp'])).err.join('\n'), /TESSERA_TOKEN and TESSERA_TOKEN_FILE are both set/);
  t.equal(node.seen.length, requests, 'a refused token sends no request');
});

t.test('a reader that stops early: no stack trace, exit 0', async (t) => {
  const node = await standIn(t);
  // --all pages without end here (the stand-in always has a next page): only the closed pipe stops it.
  for (const entry of [shim, bin]) {
    const result = await shell(`set -o pipefail; node ${entry} list catalog --all --url ${node.url} | head -1`);
    t.equal(result.stdout, 'k0\t{"i":0}\n', `${entry}: head got its line`);
    t.equal(result.stderr, '', 'nothing on stderr');
    t.equal(result.code, 0, 'the CLI exits 0');
  }
});

t.test('--help and --version load only the command line parser', async (t) => {
  const loaded = async (args: string) => {
    const result = await shell(
      `node --import 'data:text/javascript,import { register } from "node:module"; register(${JSON.stringify(hooks)});' ${bin} ${args}`,
    );
    return result.stderr
      .split('\n')
      .filter((line) => line.startsWith('resolved '))
      .map((line) => line.slice('resolved '.length));
  };
  const allowed = (url: string) =>
    url.startsWith('node:') || url.endsWith('/cli/dist/bin.js') || url.endsWith('/cli/dist/program.js') || url.includes('/node_modules/commander/');
  for (const args of ['--version', '--help', 'help']) {
    const urls = await loaded(args);
    t.ok(
      urls.some((url) => url.endsWith('/program.js')),
      `tessera ${args}: the hooks see the modules it loads`,
    );
    t.same(
      urls.filter((url) => !allowed(url)),
      [],
      `tessera ${args} loads no command`,
    );
  }
  const put = await loaded('incr --help');
  t.ok(
    put.some((url) => url.includes('/core/dist/')),
    'control: the help of one command loads that command and the core',
  );
});
