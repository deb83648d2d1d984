// Goal: the tessera command works as a user would try it against a running cluster, and refuses bad input
// with a coded message and a non-zero exit code.
// Method: a two-region cluster of real daemons; run the CLI in-process (runCli) capturing its output.
import t from 'tap';
import { runCli } from '@tessera/cli';
import { eventually, startTestCluster } from './harness.js';

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

t.test('put, get with a session token, del and status against a running cluster', async (t) => {
  const cluster = await startTestCluster(t, ['eu-west', 'us-east']);
  const [eu, us] = cluster.nodes;
  const put = await cli(['put', 'profiles', 'ada', '{"name":"Ada"}', '--url', eu!.url, '--tag', 'pii']);
  t.equal(put.code, 0, put.err.join('\n'));
  const session = /session=(\S+)/.exec(put.out[0] ?? '')?.[1];
  t.ok(session, 'put prints a session token');
  const get = await cli(['get', 'profiles', 'ada', '--url', us!.url, '--session', session!]);
  t.equal(get.code, 0, get.err.join('\n'));
  t.same(JSON.parse(get.out[0]!), { name: 'Ada' }, 'the other region answers once it has the write');
  const json = await cli(['get', 'profiles', 'ada', '--url', eu!.url, '--json']);
  t.same(JSON.parse(json.out.join('\n')).tags, ['pii']);
  t.equal((await cli(['del', 'profiles', 'ada', '--url', eu!.url])).code, 0);
  const gone = await cli(['get', 'profiles', 'ada', '--url', eu!.url]);
  t.equal(gone.code, 1);
  t.match(gone.err.join('\n'), /ERR_DOC_NOT_FOUND/);
  t.ok(await eventually(async () => (await cli(['status', '--url', eu!.url])).code === 0, 10_000), 'status exits 0 while every link is open');
  const status = await cli(['status', '--url', eu!.url]);
  t.match(status.out.join('\n'), /us-east-1\s+us-east\s+open/, 'status shows the link');
  t.match(status.out.join('\n'), /per lane|adaptive/, 'and its cadence (the dev config gives catalog a lane of its own)');
  for (const proxy of cluster.layout.proxies.values()) proxy.partition(true);
  t.ok(await eventually(async () => (await cli(['status', '--url', eu!.url])).code === 1, 15_000), 'status exits 1 when a link is down');
  for (const proxy of cluster.layout.proxies.values()) proxy.heal();
});

t.test('bad input: a coded message and a non-zero exit code', async (t) => {
  const cases: Array<[string[], number, RegExp]> = [
    [['put', 'profiles', 'k', '{not json', '--url', 'http://127.0.0.1:1'], 1, /ERR_VALUE_INVALID: value is not JSON/],
    [['put', 'Bad Dataset', 'k', '{}'], 1, /ERR_DATASET_NAME_INVALID/],
    [['put', 'profiles', 'k', '{}', '--type', 'graph'], 1, /ERR_TYPE_UNKNOWN/],
    [['get', 'profiles', 'k', '--url', 'ftp://x'], 1, /ERR_OPTION_INVALID: --url "ftp:\/\/x" must use http or https/],
    [['get', 'profiles', 'k', '--url', 'http://127.0.0.1:1'], 1, /cannot reach the node/],
    [['status', '--url', 'http://127.0.0.1:1', '--lag-max', '-5'], 1, /--lag-max "-5"/],
    [['dev', '--base-port', '80'], 1, /--base-port "80"/],
    [['dev', '--regions', 'eu-west,eu-west'], 1, /listed twice/],
    [['no-such-command'], 2, /unknown command/],
  ];
  for (const [args, code, message] of cases) {
    const result = await cli(args);
    t.equal(result.code, code, `tessera ${args.join(' ')} exits ${code}`);
    if (code === 1) t.match(result.err.join('\n'), message, `tessera ${args.join(' ')}: ${result.err.join(' ')}`);
  }
});
