// Goal: the CLI covers every value type's operations as the HTTP API offers them, and lists datasets page by
// page, with the results a user would check through `get`.
// Method: one real `tessera serve` process; the CLI runs in-process (runCli); Yjs updates and Automerge changes
// are made with the libraries themselves and passed as base64 and as files.
import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as Automerge from '@automerge/automerge';
import * as Y from 'yjs';
import { runCli } from '@tessera/cli';
import { opsPerCommandMax } from '../src/commands/ops.js';
import { api, startTestCluster } from './harness.js';

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

t.test('operations of every type, and list', async (t) => {
  const cluster = await startTestCluster(t, ['eu-west']);
  const url = cluster.nodes[0]!.url;
  const ok = async (args: string[]) => {
    const result = await cli([...args, '--url', url]);
    t.equal(result.code, 0, `tessera ${args.join(' ')}: ${result.err.join(' ')}`);
    return result;
  };
  const value = async (dataset: string, key: string) => JSON.parse((await ok(['get', dataset, key])).out[0]!) as unknown;

  // Counter: the default amount, an explicit one, a negative one, and the alias.
  t.match((await ok(['increment', 'visits', 'home'])).out[0], /^ok seq=\d+ session=\S+$/, 'a write prints its sequence number and session token');
  await ok(['incr', 'visits', 'home', '5']);
  await ok(['increment', 'visits', 'home', '-2']);
  t.equal(await value('visits', 'home'), 4, 'counter: 1 + 5 - 2');

  // Set: several elements in one request; words are strings, JSON scalars are themselves.
  t.equal((await ok(['add', 'carts', 'u1', 'book', 'lamp', '42', '"42"'])).out.length, 4, 'one line per element');
  await ok(['remove', 'carts', 'u1', 'lamp']);
  t.same(((await value('carts', 'u1')) as unknown[]).map((e) => JSON.stringify(e)).sort(), ['"42"', '"book"', '42'], 'set: add and remove');

  // Map fields.
  await ok(['put', 'profiles', 'ada', '{"name":"Ada","address":{"city":"Dublin","zip":"D01"}}']);
  await ok(['set', 'profiles', 'ada', 'address.city', '"Cork"']);
  await ok(['delete-field', 'profiles', 'ada', 'address.zip']);
  t.same(await value('profiles', 'ada'), { name: 'Ada', address: { city: 'Cork' } }, 'map: a nested field set and another deleted');

  // Yjs: an update as base64, then one from a file.
  const dir = await mkdtemp(join(tmpdir(), 'tessera-cli-ops-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const ydoc = new Y.Doc();
  ydoc.getText('body').insert(0, 'Hello');
  await ok(['yjs-update', 'notes', 'n1', Buffer.from(Y.encodeStateAsUpdate(ydoc)).toString('base64')]);
  const before = Y.encodeStateVector(ydoc);
  ydoc.getText('body').insert(5, ', world');
  await writeFile(join(dir, 'update.bin'), Y.encodeStateAsUpdate(ydoc, before));
  await ok(['yjs-update', 'notes', 'n1', '--file', join(dir, 'update.bin')]);
  const doc = JSON.parse((await ok(['get', 'notes', 'n1', '--json'])).out.join('\n')) as { type: string; value: string };
  const replica = new Y.Doc();
  Y.applyUpdate(replica, Buffer.from(doc.value, 'base64'));
  t.equal(replica.getText('body').toString(), 'Hello, world', 'yjs: both updates applied');

  // Automerge: a new document of that type, from changes as base64.
  let board = Automerge.change(Automerge.init<{ cards: string[] }>(), (d) => {
    d.cards = ['todo'];
  });
  board = Automerge.change(board, (d) => {
    d.cards.push('doing');
  });
  const changes = Automerge.getAllChanges(board).map((change) => Buffer.from(change).toString('base64'));
  await ok(['automerge-changes', 'boards', 'b1', ...changes, '--type', 'automerge']);
  t.same(await value('boards', 'b1'), { cards: ['todo', 'doing'] }, 'automerge: the changes applied in order');

  // list: pages with a cursor, --all, --prefix, --json.
  for (let i = 0; i < 5; i++) await ok(['put', 'catalog', `item-${i}`, `{"n":${i}}`]);
  await ok(['put', 'catalog', 'other', '{"n":9}']);
  const first = await ok(['list', 'catalog', '--limit', '2']);
  t.same(first.out, ['item-0\t{"n":0}', 'item-1\t{"n":1}'], 'a page: key, a tab, the value');
  const cursor = /--cursor (\S+)/.exec(first.err.join('\n'))?.[1];
  t.ok(cursor, 'the continuation goes to stderr, so that stdout stays data');
  t.same((await ok(['list', 'catalog', '--limit', '2', '--cursor', cursor!])).out, ['item-2\t{"n":2}', 'item-3\t{"n":3}'], 'the next page');
  const all = await ok(['list', 'catalog', '--limit', '2', '--all']);
  t.equal(all.out.length, 6, '--all follows the cursor to the end');
  t.same(all.err, [], 'and says nothing more');
  t.same(
    (await ok(['list', 'catalog', '--prefix', 'other', '--json'])).out.map((line) => JSON.parse(line)),
    [{ key: 'other', type: 'map', value: { n: 9 }, tags: [] }],
    '--prefix, --json',
  );

  // Refusals, before or by the node, with the code.
  const refused: Array<[string[], RegExp]> = [
    [['increment', 'visits', 'home', '1.5'], /ERR_VALUE_INVALID: amount "1.5" must be an integer/],
    [['add', 'carts', 'u1', '{"a":1}'], /ERR_VALUE_INVALID: set element \{"a":1\}: elements are JSON scalars/],
    [['add', 'carts', 'u1', ...Array.from({ length: opsPerCommandMax + 1 }, (_, i) => `e${i}`)], /101 operations exceed the limit of 100/],
    [['increment', 'carts', 'u1'], /ERR_TYPE_MISMATCH/],
    [['yjs-update', 'notes', 'n1'], /ERR_OPTION_INVALID: give the Yjs update as base64 arguments or with --file/],
    [['list', 'catalog', '--limit', '1001'], /--limit "1001" must be an integer from 1 to 1000/],
    [['set', 'profiles', 'ada', 'name', 'Ada'], /ERR_VALUE_INVALID: value is not JSON/],
  ];
  // The CLI's bound is the node's: a request of that many operations is taken, one more is refused.
  const ops = (n: number) => Array.from({ length: n }, (_, i) => ({ op: 'add', element: `bound-${i}` }));
  t.equal((await api(cluster.nodes[0]!, 'POST', '/v1/kv/carts/bound/ops', ops(opsPerCommandMax))).status, 200, `the node takes ${opsPerCommandMax} operations`);
  t.equal((await api(cluster.nodes[0]!, 'POST', '/v1/kv/carts/bound/ops', ops(opsPerCommandMax + 1))).status, 400, 'and refuses one more');
  for (const [args, message] of refused) {
    const result = await cli([...args, '--url', url]);
    t.equal(result.code, 1, `tessera ${args.slice(0, 4).join(' ')} … exits 1`);
    t.match(result.err.join('\n'), message);
  }
});
