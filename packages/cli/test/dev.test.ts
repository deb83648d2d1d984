// Goal: `tessera dev` behaves as a person expects of a dev server. Its nodes never outlive it — not on Ctrl-C,
// not on a failure (a seeding error), not when it is killed with SIGKILL. The policy file is the user's after
// the first start (never rewritten); a cluster of other regions starts next to an existing one; a policy that
// lacks a region asked for is refused with a message naming the file and the region. Node logs are levelled
// records (pretty on a terminal), quiet by default.
// Method: `tessera dev` as a real process (the bin) in a temporary folder; its nodes are found through
// /proc (their command lines name that folder); the log formatting is checked in-process on a fake terminal.
import t from 'tap';
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { devLogger, logNodeLine } from '../src/dev/logs.js';
import { eventually, freeBasePort } from './harness.js';

const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
/** From a parent's death to its nodes' exit: each drains (links flush up to 5 s) and closes its store. */
const orphanExitMsMax = 15_000;
t.setTimeout(240_000);

/** Pids of live processes whose command line mentions `text`. */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

interface Dev {
  readonly child: ChildProcess;
  readonly stdout: () => string;
  readonly stderr: () => string;
  readonly exit: Promise<number | null>;
}

function dev(cwd: string, args: string[]): Dev {
  const child = spawn(process.execPath, [bin, 'dev', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exit };
}

async function up(t: { ok(value: unknown, message: string): void }, run: Dev): Promise<void> {
  const ready = await eventually(async () => run.stdout().includes('dev cluster is up') || run.child.exitCode !== null, 60_000);
  t.ok(ready && run.child.exitCode === null, `the cluster came up: ${run.stdout()} ${run.stderr()}`);
}

t.test("the nodes stop with their parent (Ctrl-C, SIGKILL, a failure); the policy is the user's; other regions beside", async (t) => {
  const cwd = await mkdtemp(join(tmpdir(), 'tessera-dev-'));
  t.teardown(async () => {
    for (const pid of processesMentioning(cwd)) process.kill(pid, 'SIGKILL');
    await rm(cwd, { recursive: true, force: true });
  });
  const basePort = String(await freeBasePort(3));
  const regions = 'eu-west,us-east';
  const folder = join(cwd, '.tessera-dev', 'eu-west+us-east');

  // First start, stopped with SIGINT as Ctrl-C does.
  const first = dev(cwd, ['--regions', regions, '--base-port', basePort, '--verbose']);
  await up(t, first);
  t.equal(processesMentioning(folder).length, 2, 'one process per region, in the folder of that set of regions');
  t.match(
    first.stderr(),
    /"level":30.*"node":"eu-west-1".*"msg":"daemon-started"/,
    "--verbose: the nodes' events as levelled records (JSON when not on a terminal)",
  );
  first.child.kill('SIGINT');
  t.equal(await first.exit, 0, 'Ctrl-C: exit 0');
  t.same(processesMentioning(folder), [], 'and no node left');

  // The policy is the user's now: an edit survives the next start.
  const policyFile = join(folder, 'policy.yaml');
  const edited = `${(await readFile(policyFile, 'utf8')).replace('version: 1', 'version: 2')}# edited by hand\n`;
  await writeFile(policyFile, edited);
  const second = dev(cwd, ['--regions', regions, '--base-port', basePort, '--no-seed']);
  await up(t, second);
  t.equal(await readFile(policyFile, 'utf8'), edited, 'the edited policy.yaml was not rewritten');
  t.notMatch(second.stderr(), /daemon-started/, 'quiet by default: no lifecycle events');

  // As in the README after `npm start`: other regions in the same --dir, beside the running cluster.
  const otherPort = String(await freeBasePort(3));
  const other = dev(cwd, ['--regions', 'eu-west,eu-central,us-east', '--base-port', otherPort, '--latency', '40', '--durability', 'fsync', '--no-seed']);
  await up(t, other);
  other.child.kill('SIGINT');
  t.equal(await other.exit, 0, 'a cluster of other regions starts and stops beside the first');

  // SIGKILL: the parent cannot clean up; the nodes see their stdin pipe close.
  t.equal(processesMentioning(folder).length, 2);
  second.child.kill('SIGKILL');
  await second.exit;
  t.ok(
    await eventually(async () => processesMentioning(folder).length === 0, orphanExitMsMax),
    `the nodes exit within ${orphanExitMsMax} ms of the parent's SIGKILL`,
  );

  // A seeding failure: a policy that keeps the catalog out of us-east makes the demo write there fail.
  await writeFile(
    policyFile,
    edited.replace('version: 2', 'version: 3').replace('catalog:  { type: map, placement: global', 'catalog:  { type: map, placement: { regions: [eu-west] }'),
  );
  const third = dev(cwd, ['--regions', regions, '--base-port', basePort]);
  t.equal(await third.exit, 1, 'a seeding error: exit 1');
  t.match(third.stderr(), /ERR_POLICY_DENIED|421/, `with the reason: ${third.stderr()}`);
  t.same(processesMentioning(folder), [], 'and no node left');

  // A policy without a region asked for: refused before anything starts, naming the file and the region.
  await writeFile(policyFile, (await readFile(policyFile, 'utf8')).replace(/^ {2}us-east:.*\n/m, ''));
  const refused = dev(cwd, ['--regions', regions, '--base-port', basePort]);
  t.equal(await refused.exit, 1);
  t.match(
    refused.stderr(),
    /ERR_POLICY_INVALID: .*eu-west\+us-east\/policy\.yaml \(version 3\) has no region us-east, which --regions asks for/,
    'the message names the file and the region',
  );
  t.same(processesMentioning(cwd), [], 'nothing was started');
});

t.test('node log lines as levelled, readable records', async (t) => {
  let text = '';
  const terminal = Object.assign(
    new Writable({
      write: (chunk, _encoding, done) => {
        text += String(chunk);
        done();
      },
    }),
    { isTTY: true },
  );
  const logger = devLogger('debug', terminal);
  logNodeLine(
    logger,
    'eu-west-1',
    JSON.stringify({ time: '2026-01-01T00:00:00Z', node: 'eu-west-1', region: 'eu-west', event: 'daemon-started', url: 'http://x' }),
    'stdout',
  );
  logNodeLine(logger, 'eu-west-1', JSON.stringify({ node: 'eu-west-1', event: 'link-failed', peer: 'us-east-1', error: 'ECONNREFUSED' }), 'stdout');
  logNodeLine(logger, 'eu-west-1', JSON.stringify({ node: 'eu-west-1', event: 'http_request', status: 200 }), 'stdout');
  logNodeLine(logger, 'eu-west-1', 'TypeError: boom', 'stderr');
  const plain = text.replace(/\u001b\[[0-9;]*m/g, '');
  t.match(plain, /INFO.*daemon-started/, 'info: lifecycle');
  t.match(plain, /WARN.*link-failed/, 'warn: a failure');
  t.match(plain, /DEBUG.*http_request/, 'debug: requests');
  t.match(plain, /ERROR.*TypeError: boom/, 'error: what a node says on stderr');
  t.match(plain, /node: "eu-west-1"|eu-west-1/, 'the node is named');
  t.notMatch(plain, /\{"time"/, 'no raw JSON on a terminal');
  t.not(text, plain, 'coloured');

  let quiet = '';
  const quietLogger = devLogger(
    'warn',
    Object.assign(
      new Writable({
        write: (chunk, _encoding, done) => {
          quiet += String(chunk);
          done();
        },
      }),
      { isTTY: false },
    ),
  );
  logNodeLine(quietLogger, 'eu-west-1', JSON.stringify({ event: 'daemon-started' }), 'stdout');
  logNodeLine(quietLogger, 'eu-west-1', JSON.stringify({ event: 'link-failed', error: 'x' }), 'stdout');
  t.equal(quiet.trim().split('\n').length, 1, 'the default level keeps warnings only');
  t.match(JSON.parse(quiet), { level: 40, node: 'eu-west-1', msg: 'link-failed', error: 'x' }, 'as JSON when not on a terminal');
});
