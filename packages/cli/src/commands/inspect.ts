/**
 * `tessera inspect`: a replica's state — offline and read-only on a stopped node's data directory
 * (`tessera inspect ./data/eu-west-1 summary`), or on a running node (`tessera inspect --url <node> summary`).
 * Both read with the store's inspect.ts (offline from a snapshot of the directory, online through the node's
 * /v1/inspect routes), so a subcommand prints the same either way; `peers` adds the live links with --url.
 * Tables by default, `--json` on every subcommand; every listing is bounded and says when more exist.
 */
import { Command } from 'commander';
import { type Hlc, TesseraError } from '@tessera/core';
import {
  type DotView,
  type InspectConflicts,
  type InspectDoc,
  type InspectKeys,
  type InspectLog,
  type InspectPeers,
  type InspectSummary,
  type StoreReader,
  inspectConflicts,
  inspectConflictsLimitDefault,
  inspectConflictsLimitMax,
  inspectDoc,
  inspectKeys,
  inspectLog,
  inspectPeers,
  inspectSummary,
  masterKeyFromEnv,
  openDataDirectorySnapshot,
} from '@tessera/store';
import { type NodeApi, callApi } from '../client.js';
import { type ConnectionOptions, addConnectionOptions, nodeApiOf } from '../options.js';
import { terminalSafe } from '../terminal-text.js';
import { table } from './status.js';

/** How long `summary` may take on a running node (it scans the documents). */
export const summaryTimeoutMs = 60_000;
/** Characters of a value shown in a table cell. */
export const cellCharsMax = 60;

/** A link of the node's status, as `peers --url` shows it. */
interface LinkView {
  readonly peer: string;
  readonly region: string;
  readonly state: string;
  readonly cursor: number;
  readonly lagMs: number;
  readonly backlogEntries: number;
  readonly lanes?: ReadonlyArray<{ readonly id: string; readonly cursor: number; readonly lagMs: number; readonly backlogEntries: number }>;
}

/** `peers`: the durable view, and the live links when a running node was asked. */
type PeersAnswer = InspectPeers & { readonly links: readonly LinkView[] | null };

/** Where answers come from: a data directory or a node. */
interface Source {
  summary(options: { scanMax?: number }): Promise<InspectSummary>;
  keys(dataset: string, options: { prefix?: string; after?: string; limit?: number }): Promise<InspectKeys>;
  doc(dataset: string, key: string): Promise<InspectDoc>;
  log(options: { from?: number; to?: number; limit?: number; values?: boolean }): Promise<InspectLog>;
  peers(): Promise<PeersAnswer>;
  conflicts(options: { dataset?: string; limit?: number }): Promise<InspectConflicts>;
}

/** Reads a stopped node's data directory through a read-only snapshot, one per subcommand. */
function directorySource(dir: string): Source {
  const read = async <T>(query: (reader: StoreReader) => Promise<T>): Promise<T> => {
    const snapshot = await openDataDirectorySnapshot(dir, await masterKeyFromEnv());
    try {
      return await query(snapshot.reader);
    } finally {
      await snapshot.close();
    }
  };
  return {
    summary: (options) => read((reader) => inspectSummary(reader, options)),
    keys: (dataset, options) => read((reader) => inspectKeys(reader, dataset, options)),
    doc: (dataset, key) => read((reader) => inspectDoc(reader, dataset, key)),
    log: (options) => read((reader) => inspectLog(reader, options)),
    peers: () => read(async (reader) => ({ ...(await inspectPeers(reader)), links: null })),
    conflicts: (options) => read((reader) => inspectConflicts(reader, options)),
  };
}

function queryString(params: Record<string, string | number | boolean | undefined>): string {
  const entries = Object.entries(params)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]): [string, string] => [name, String(value)]);
  return entries.length === 0 ? '' : `?${new URLSearchParams(entries).toString()}`;
}

/** Asks a running node: its /v1/inspect routes, /v1/conflicts, and /v1/status for the live links. */
function nodeSource(node: NodeApi): Source {
  const get = async <T>(path: string, timeoutMs?: number) => expectAnswer(path, await callApi(node, 'GET', path, undefined, timeoutMs)) as T;
  return {
    summary: (options) => get(`/v1/inspect/summary${queryString(options)}`, summaryTimeoutMs),
    keys: (dataset, options) => get(`/v1/inspect/keys/${encodeURIComponent(dataset)}${queryString(options)}`),
    doc: (dataset, key) => get(`/v1/inspect/doc/${encodeURIComponent(dataset)}/${encodeURIComponent(key)}`),
    log: (options) => get(`/v1/inspect/log${queryString(options)}`),
    peers: async () => {
      const [peers, status] = await Promise.all([get<InspectPeers>('/v1/inspect/peers'), get<{ links: LinkView[] }>('/v1/status')]);
      return { ...peers, links: status.links };
    },
    conflicts: async (options) => {
      // The existing route lists conflicts; one record more than asked tells whether more exist.
      const limit = boundedInteger('--limit', options.limit ?? inspectConflictsLimitDefault, 1, inspectConflictsLimitMax);
      const [answer, status] = await Promise.all([
        get<{ conflicts: InspectConflicts['conflicts'] }>(`/v1/conflicts${queryString({ dataset: options.dataset, limit: limit + 1 })}`),
        get<{ node: string; region: string }>('/v1/status'),
      ]);
      return {
        node: status.node,
        region: status.region,
        dataset: options.dataset ?? null,
        conflicts: answer.conflicts.slice(0, limit),
        more: answer.conflicts.length > limit,
      };
    },
  };
}

/**
 * Checks the shape of a node's answer before it is printed: an object naming its node and region, with the
 * lists the printers walk as lists. A node that answers something else (another server, a hostile one) gets
 * `ERR_DECODE`, not a crash half-way through a table.
 */
function expectAnswer(path: string, answer: unknown): unknown {
  const fail = (why: string) => {
    throw new TesseraError('ERR_DECODE', `the answer of ${path.split('?')[0]} is not what a Tessera node sends: ${why}`);
  };
  if (typeof answer !== 'object' || answer === null || Array.isArray(answer)) fail('not a JSON object');
  const record = answer as Record<string, unknown>;
  if (path.startsWith('/v1/inspect/') || path === '/v1/status') {
    if (typeof record.node !== 'string' || typeof record.region !== 'string') fail('no node and region');
  }
  for (const list of ['items', 'entries', 'dots', 'datasets', 'conflicts', 'cursors', 'frontiers', 'links', 'nodes']) {
    if (list in record && !Array.isArray(record[list])) fail(`${list} is not a list`);
  }
  return answer;
}

function integerOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]{1,15}$/.test(value)) throw new TesseraError('ERR_OPTION_INVALID', `${name} ${JSON.stringify(value)} is not a non-negative integer`);
  return Number(value);
}

function boundedInteger(name: string, value: number, min: number, max: number): number {
  if (value < min || value > max) throw new TesseraError('ERR_OPTION_INVALID', `${name} ${value} is outside ${min} to ${max}`);
  return value;
}

/** `options` without its undefined members. */
function defined<T extends Record<string, unknown>>(options: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}

// ---------------------------------------------------------------- formatting

function bytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function hlcText(hlc: Hlc | null | undefined): string {
  if (hlc === null || hlc === undefined) return '-';
  return `${new Date(hlc.ms).toISOString()}${hlc.c > 0 ? `+${hlc.c}` : ''}`;
}

function cell(value: unknown): string {
  const text = JSON.stringify(value) ?? 'undefined';
  return text.length > cellCharsMax ? `${text.slice(0, cellCharsMax - 1)}…` : text;
}

function dotText(dot: readonly [string, number] | null | undefined): string {
  return dot === null || dot === undefined ? '-' : `${dot[0]}:${dot[1]}`;
}

function header(answer: { node: string; region: string }): string {
  return `node ${answer.node} (${answer.region})`;
}

function printSummary(print: (line: string) => void, s: InspectSummary): void {
  const policy =
    s.policy.enforced === null
      ? 'no policy enforced (every document may live everywhere)'
      : `policy v${s.policy.enforced.version} enforced (hash ${s.policy.enforced.hash.slice(0, 12)}…)`;
  const shadow = s.policy.shadow === null ? '' : `, v${s.policy.shadow.version} in shadow`;
  print(`${header(s)}, format ${s.format}, clock ${hlcText(s.hlc)}`);
  print(`${policy}${shadow}; ${s.policy.versionsStored} version(s) stored`);
  print(`delta log: ${s.log.entries} entries retained, floor ${s.log.floor}, head ${s.log.head}; audit log: ${s.audit.length} entries`);
  print('');
  const total = { documents: 0, live: 0, deleted: 0, bytes: 0, quarantined: 0, conflicts: 0, corrupt: 0 };
  const rows = s.datasets.map((d) => {
    for (const name of Object.keys(total) as Array<keyof typeof total>) total[name] += d[name];
    return [d.dataset, String(d.documents), String(d.live), String(d.deleted), bytes(d.bytes), String(d.quarantined), String(d.conflicts)];
  });
  if (rows.length > 1)
    rows.push([
      'total',
      String(total.documents),
      String(total.live),
      String(total.deleted),
      bytes(total.bytes),
      String(total.quarantined),
      String(total.conflicts),
    ]);
  print(rows.length === 0 ? 'no documents' : table(['dataset', 'documents', 'live', 'deleted', 'bytes', 'quarantined', 'conflicts'], rows));
  for (const d of s.datasets) if (d.corrupt > 0) print(`${d.dataset}: ${d.corrupt} document record(s) do not decode (see keys)`);
  if (s.datasetsOmitted > 0) print(`${s.datasetsOmitted} more dataset(s) not listed`);
  if (!s.scan.complete) print(`counts cover the first ${s.scan.recordsMax} records of each kind; more exist (--scan-max raises the bound)`);
}

function printKeys(print: (line: string) => void, k: InspectKeys): void {
  print(`${header(k)}: dataset ${k.dataset}${k.prefix === '' ? '' : `, keys starting with ${JSON.stringify(k.prefix)}`}`);
  print(
    k.items.length === 0
      ? 'no documents'
      : table(
          ['key', 'type', 'state', 'bytes', 'origin', 'tags'],
          k.items.map((item) =>
            'error' in item
              ? [item.key, '-', 'CORRUPT', bytes(item.bytes), '-', item.error.message]
              : [item.key, item.type, item.state, bytes(item.bytes), item.origin ?? '-', item.tags.join(' ')],
          ),
        ),
  );
  if (k.next !== null) print(`more documents: continue with --after ${JSON.stringify(k.next)}`);
}

function dotDetail(dot: DotView): string {
  if (dot.path !== undefined) return dot.path.length === 0 ? '(whole value)' : dot.path.join('.');
  if (dot.tag !== undefined) return dot.tag;
  if (dot.element !== undefined) return cell(dot.element);
  return '';
}

function printDoc(print: (line: string) => void, d: InspectDoc): void {
  print(
    `${d.dataset}/${d.key} on ${header(d)}: ${d.type}, ${d.state}, ${bytes(d.bytes)} stored, origin ${d.origin ?? 'unknown'}, tags ${d.tags.length === 0 ? '(none)' : d.tags.join(' ')}`,
  );
  if (d.state === 'deleted') print('value: (deleted; the tombstone keeps the causal context until every holder has the delete)');
  else for (const [i, line] of JSON.stringify(d.value, null, 2).split('\n').entries()) print(i === 0 ? `value: ${line}` : `       ${line}`);
  print('');
  print('causal context');
  print(
    table(
      ['node', 'seen (1..n)', 'beyond', 'held'],
      d.nodes.map((n) => [n.node, String(n.seen), String(n.beyond), String(n.held)]),
    ),
  );
  if (d.context.cloud.length > 0) print(`dots seen beyond the contiguous prefix: ${d.context.cloud.map(dotText).join(' ')}`);
  print('');
  print('dots held');
  print(
    d.dots.length === 0
      ? `none (a ${d.type} document keeps its history in its own format)`
      : table(
          ['dot', 'role', 'field / tag / element', 'hlc'],
          d.dots.map((dot) => [`${dot.node}:${dot.counter}`, dot.role, dotDetail(dot), hlcText(dot.hlc)]),
        ),
  );
  if (d.dotsOmitted > 0) print(`${d.dotsOmitted} more dots not listed`);
  for (const group of d.siblings) {
    print('');
    print(`concurrent values at ${group.path.length === 0 ? '(whole value)' : group.path.join('.')}`);
    print(
      table(
        ['value', 'dot', 'hlc', 'shown'],
        group.entries.map((e) => [cell(e.value), dotText(e.dot), hlcText(e.hlc), e.wins ? 'yes' : '']),
      ),
    );
  }
  print('');
  print('conflict records');
  printConflictRows(print, d.conflicts, d.conflictsMore);
}

function printConflictRows(print: (line: string) => void, conflicts: InspectConflicts['conflicts'], more: boolean): void {
  print(
    conflicts.length === 0
      ? 'no conflict records'
      : table(
          ['dataset', 'key', 'path', 'kind', 'winner', 'loser', 'recorded', 'from'],
          conflicts.map((c) => [
            c.dataset,
            c.key,
            c.path.length === 0 ? '(whole value)' : c.path.join('.'),
            c.kind,
            `${cell(c.winner.value)} ${dotText(c.winner.dot)}`,
            `${cell(c.loser.value)} ${dotText(c.loser.dot)}`,
            hlcText(c.recordedAt),
            c.origin,
          ]),
        ),
  );
  if (more) print('more conflict records exist (raise --limit, or name a --dataset)');
}

function printLog(print: (line: string) => void, l: InspectLog, values: boolean): void {
  print(`delta log of ${header(l)}: floor ${l.floor} (entries up to it truncated), head ${l.head}`);
  const head = ['seq', 'dataset', 'key', 'origin', 'origin seq', 'hlc', 'kind', 'to', 'bytes', ...(values ? ['value'] : [])];
  print(
    l.entries.length === 0
      ? 'no entries in this range'
      : table(
          head,
          l.entries.map((e) =>
            'error' in e
              ? [String(e.seq), '-', '-', '-', '-', '-', 'CORRUPT', '-', bytes(e.bytes), ...(values ? [e.error.message] : [])]
              : [
                  String(e.seq),
                  e.dataset,
                  e.key,
                  e.origin,
                  String(e.originSeq),
                  hlcText(e.hlc),
                  e.kind,
                  e.to.join(' '),
                  bytes(e.bytes),
                  ...(values
                    ? [e.kind === 'purge' ? '(no value)' : `${cell(e.value)}${e.tags !== undefined && e.tags.length > 0 ? ` tags ${e.tags.join(' ')}` : ''}`]
                    : []),
                ],
          ),
        ),
  );
  if (l.older !== null) print(`older entries: --to ${l.older}`);
  if (l.newer !== null) print(`newer entries: --from ${l.newer}`);
}

function printPeers(print: (line: string) => void, p: PeersAnswer): void {
  print(`${header(p)}, log head ${p.head}`);
  const live = new Map<string, { state: string; cursor: number; lagMs: number; backlog: number }>();
  for (const link of p.links ?? []) {
    for (const lane of link.lanes ?? [{ id: 'main', cursor: link.cursor, lagMs: link.lagMs, backlogEntries: link.backlogEntries }]) {
      live.set(`${link.peer}\u0000${lane.id}`, { state: link.state, cursor: lane.cursor, lagMs: lane.lagMs, backlog: lane.backlogEntries });
    }
  }
  const keys = [...new Set([...p.cursors.map((c) => `${c.peer}\u0000${c.lane}`), ...live.keys()])];
  const stored = new Map(p.cursors.map((c) => [`${c.peer}\u0000${c.lane}`, c]));
  const rows = keys.map((key) => {
    const [peer, lane] = key.split('\u0000') as [string, string];
    const durable = stored.get(key);
    const now = live.get(key);
    const base = [peer, lane, durable === undefined ? '-' : String(durable.acknowledged), durable === undefined ? '-' : String(durable.behind)];
    return p.links === null
      ? base
      : [
          ...base,
          now?.state ?? '-',
          now === undefined ? '-' : String(now.cursor),
          now === undefined ? '-' : `${now.lagMs} ms`,
          now === undefined ? '-' : String(now.backlog),
        ];
  });
  const columns = ['peer', 'lane', 'acknowledged (durable)', 'behind head', ...(p.links === null ? [] : ['link', 'acknowledged (live)', 'lag', 'backlog'])];
  print(rows.length === 0 ? 'no cursors: no peer has acknowledged anything yet' : table(columns, rows));
  if (p.links === null) print('(offline: the live links, acknowledgements and lag are shown with --url on the running node)');
  print('');
  print(
    p.frontiers.length === 0
      ? 'no frontiers: nothing received from other origins'
      : table(
          ['origin', 'highest seq held'],
          p.frontiers.map((f) => [f.origin, String(f.seq)]),
        ),
  );
  if (p.more) print('more cursors or frontiers exist than are listed');
}

function printConflicts(print: (line: string) => void, c: InspectConflicts): void {
  print(`conflict records on ${header(c)}${c.dataset === null ? '' : `, dataset ${c.dataset}`}: ${c.conflicts.length}${c.more ? '+' : ''}`);
  printConflictRows(print, c.conflicts, c.more);
}

// ---------------------------------------------------------------- commands

/** The subcommands, run against `source()`. */
function subcommands(print: (line: string) => void, source: (options: ConnectionOptions) => Promise<Source>): Command {
  const inspect = new Command('tessera inspect')
    .usage('<data directory> <subcommand> [options]  |  tessera inspect --url <node> <subcommand> [options]')
    .description("a replica's state: offline and read-only on a stopped node's data directory, or on a running node with --url")
    .showHelpAfterError()
    .configureOutput({ writeOut: (text) => print(text.trimEnd()) })
    .exitOverride();
  const sub = (name: string, description: string) =>
    addConnectionOptions(inspect.command(name).description(description), "a running node's API instead of a data directory").option('--json', 'print as JSON');
  type Common = ConnectionOptions & { json?: boolean };

  sub('summary', "datasets (documents live and deleted, bytes, quarantined, conflicts), the policy in force, the log's range, the audit log's length")
    .option('--scan-max <n>', 'records of each kind to read (default 100000)')
    .action(async (options: Common & { scanMax?: string }) => {
      const answer = await (await source(options)).summary(defined({ scanMax: integerOption('--scan-max', options.scanMax) }));
      if (options.json) print(JSON.stringify(answer, null, 2));
      else printSummary(print, answer);
    });

  sub('keys', "a dataset's documents in key order, deleted ones too: type, state, size, origin, tags")
    .argument('<dataset>')
    .option('--prefix <prefix>', 'only keys starting with this')
    .option('--after <key>', 'continue after this key')
    .option('--limit <n>', 'documents to list (default 100, at most 1000)')
    .action(async (dataset: string, options: Common & { prefix?: string; after?: string; limit?: string }) => {
      const answer = await (await source(options)).keys(
        dataset,
        defined({ prefix: options.prefix, after: options.after, limit: integerOption('--limit', options.limit) }),
      );
      if (options.json) print(JSON.stringify(answer, null, 2));
      else printKeys(print, answer);
    });

  sub('doc', 'one document: value, tags, origin, causal context, the dots it holds with their HLCs, concurrent values, conflict records')
    .argument('<dataset>')
    .argument('<key>')
    .action(async (dataset: string, key: string, options: Common) => {
      const answer = await (await source(options)).doc(dataset, key);
      if (options.json) print(JSON.stringify(answer, null, 2));
      else printDoc(print, answer);
    });

  sub('log', 'delta-log entries (the newest, or from --from on): origin, origin seq, HLC, kind, size; values only with --values')
    .option('--from <seq>', 'from this sequence number on')
    .option('--to <seq>', 'up to this sequence number')
    .option('--limit <n>', 'entries to list (default 100, at most 1000)')
    .option('--values', "also decode each delta's value and the tags it adds")
    .action(async (options: Common & { from?: string; to?: string; limit?: string; values?: boolean }) => {
      const answer = await (await source(options)).log(
        defined({
          from: integerOption('--from', options.from),
          to: integerOption('--to', options.to),
          limit: integerOption('--limit', options.limit),
          values: options.values,
        }),
      );
      if (options.json) print(JSON.stringify(answer, null, 2));
      else printLog(print, answer, options.values === true);
    });

  sub('peers', 'per peer and lane the durably acknowledged cursor; per origin the frontier; with --url also the live links, acknowledgements and lag').action(
    async (options: Common) => {
      const answer = await (await source(options)).peers();
      if (options.json) print(JSON.stringify(answer, null, 2));
      else printPeers(print, answer);
    },
  );

  sub('conflicts', 'conflict records: every automatic resolution that hid a value (winner, loser, dots, HLCs)')
    .option('--dataset <dataset>', 'only this dataset')
    .option('--limit <n>', 'records to list (default 100, at most 1000)')
    .action(async (options: Common & { dataset?: string; limit?: string }) => {
      const answer = await (await source(options)).conflicts(defined({ dataset: options.dataset, limit: integerOption('--limit', options.limit) }));
      if (options.json) print(JSON.stringify(answer, null, 2));
      else printConflicts(print, answer);
    });
  return inspect;
}

const subcommandNames = ['summary', 'keys', 'doc', 'log', 'peers', 'conflicts'];

/** Registers `inspect`. Everything it prints goes through `terminalSafe`: what it shows was written by others. */
export function registerInspectCommand(program: Command, printRaw: (line: string) => void): void {
  const print = (line: string) => printRaw(terminalSafe(line));
  addConnectionOptions(
    program
      .command('inspect')
      .description(
        "inspect a replica (summary, keys, doc, log, peers, conflicts): offline and read-only on a stopped node's data directory, or --url on a running node",
      )
      .usage('<data directory> <subcommand> [options]  |  inspect --url <node> <subcommand> [options]  (tessera inspect --help lists the subcommands)')
      .argument('[directory]', "a stopped node's data directory (read-only), e.g. ./data/eu-west-1")
      .argument('[subcommand...]'),
  )
    // The subcommands and their options are parsed by the inner program, after the directory is taken off.
    .helpOption(false)
    .allowUnknownOption()
    .action(async (first: string | undefined, rest: string[], outer: ConnectionOptions) => {
      const args = first === undefined ? rest : [first, ...rest];
      // The first word is the directory unless it is a subcommand or an option (--url may also follow the subcommand).
      const dir = args.length > 0 && !args[0]!.startsWith('-') && !subcommandNames.includes(args[0]!) ? args.shift() : undefined;
      const source = async (inner: ConnectionOptions): Promise<Source> => {
        // Options may come before the subcommand (the outer command's) or after it (the subcommand's).
        const options = { url: inner.url ?? outer.url, token: inner.token ?? outer.token, tokenFile: inner.tokenFile ?? outer.tokenFile };
        if (options.url !== undefined && dir !== undefined)
          throw new TesseraError('ERR_OPTION_INVALID', `give a data directory (${dir}) or --url (${options.url}), not both`);
        if (dir !== undefined) return directorySource(dir);
        // Without a directory, a node: --url, else $TESSERA_URL.
        if (options.url !== undefined || (process.env.TESSERA_URL ?? '') !== '') return nodeSource(await nodeApiOf(options));
        throw new TesseraError(
          'ERR_OPTION_INVALID',
          "tessera inspect needs a stopped node's data directory (tessera inspect ./data/eu-west-1 summary) or a running node (tessera inspect --url http://127.0.0.1:7101 summary, or $TESSERA_URL)",
        );
      };
      await subcommands(print, source).parseAsync(args, { from: 'user' });
    });
}
