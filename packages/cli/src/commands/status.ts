/** `tessera status`: links, lag, backlog, rates and cadence as seen from one node. */
import { type Command } from 'commander';
import { TesseraError } from '@tessera/core';
import { callApi } from '../client.js';
import { type ConnectionOptions, addConnectionOptions, nodeApiOf } from '../options.js';

interface LinkView {
  rates: { sentEntriesPerSecond: number; sentBytesPerSecond: number; receivedEntriesPerSecond: number };
  cadence: string;
  peer: string;
  region: string;
  state: string;
  role: string;
  lagMs: number;
  backlogEntries: number;
  inflightBatches: number;
  windowBatches: number;
  rttMs: number | null;
  cursor: number;
  lastError: string | null;
  sent: { entries: number; wireBytes: number };
  received: { entries: number; wireBytes: number };
}

/** Formats rows as an aligned text table. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function bytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** A node of the cluster view (`GET /v1/cluster`) as `status` reads it. */
interface MemberView {
  node: string;
  region: string;
  reachable: boolean;
  error: string | null;
  status: { lastSeq: number; links: LinkView[] } | null;
  policy: { enforced: { version: number } | null } | null;
}

/** Registers `status`. */
export function registerStatusCommand(program: Command, print: (line: string) => void, context: { exitCode: number }): void {
  addConnectionOptions(
    program
      .command('status')
      .description(
        'the cluster from any node: every node and its links (state, lag, backlog, in flight, cadence, round trip, traffic); exit 1 if a node is unreachable, a link is down or lag is too high',
      ),
  )
    .option('--lag-max <ms>', 'exit 1 when any link lags more than this many milliseconds')
    .option('--node-only', 'only the node at --url, not the whole cluster')
    .option('--json', 'print the status as JSON')
    .action(async (options: ConnectionOptions & { lagMax?: string; nodeOnly?: boolean; json?: boolean }) => {
      const lagMaxMs = options.lagMax === undefined ? null : Number(options.lagMax);
      if (lagMaxMs !== null && (!Number.isFinite(lagMaxMs) || lagMaxMs < 0)) {
        throw new TesseraError('ERR_OPTION_INVALID', `--lag-max ${JSON.stringify(options.lagMax)} must be a non-negative number of milliseconds`);
      }
      const base = await nodeApiOf(options);
      let members: MemberView[];
      let raw: unknown;
      if (options.nodeOnly) {
        const status = (await callApi(base, 'GET', '/v1/status')) as { node: string; region: string; lastSeq: number; links: LinkView[] };
        raw = status;
        members = [{ node: status.node, region: status.region, reachable: true, error: null, status, policy: null }];
      } else {
        const cluster = (await callApi(base, 'GET', '/v1/cluster', undefined, 15_000)) as { members: MemberView[] };
        raw = cluster;
        members = cluster.members;
      }
      const problems: string[] = [];
      for (const member of members) {
        if (!member.reachable || member.status === null) {
          problems.push(`node ${member.node} (${member.region}) is unreachable from ${base.base.origin}: ${member.error ?? 'no answer'}`);
          continue;
        }
        for (const l of member.status.links) {
          if (l.state !== 'open') problems.push(`link ${member.node} → ${l.peer} is ${l.state}${l.lastError === null ? '' : ` (${l.lastError})`}`);
          if (lagMaxMs !== null && l.lagMs > lagMaxMs) problems.push(`link ${member.node} → ${l.peer} lags ${l.lagMs} ms (limit ${lagMaxMs} ms)`);
        }
      }
      if (options.json) print(JSON.stringify(raw, null, 2));
      else {
        for (const member of members) {
          if (member.status === null) {
            print(`node ${member.node} (${member.region}): UNREACHABLE ${member.error ?? ''}`.trimEnd());
            print('');
            continue;
          }
          const version = member.policy?.enforced?.version;
          print(`node ${member.node} (${member.region}), log head ${member.status.lastSeq}${version === undefined ? '' : `, policy v${version}`}`);
          print(
            table(
              ['peer', 'region', 'state', 'lag', 'backlog', 'in flight', 'cadence', 'window', 'rtt', 'rate out', 'rate in', 'sent', 'received', 'last error'],
              member.status.links.map((l) => [
                l.peer,
                l.region,
                l.state,
                `${l.lagMs} ms`,
                String(l.backlogEntries),
                String(l.inflightBatches),
                l.cadence,
                String(l.windowBatches),
                l.rttMs === null ? '-' : `${l.rttMs} ms`,
                `${l.rates.sentEntriesPerSecond}/s ${bytes(l.rates.sentBytesPerSecond)}/s`,
                `${l.rates.receivedEntriesPerSecond}/s`,
                `${l.sent.entries} (${bytes(l.sent.wireBytes)})`,
                `${l.received.entries} (${bytes(l.received.wireBytes)})`,
                l.lastError ?? '',
              ]),
            ),
          );
          print('');
        }
        for (const problem of problems) print(problem);
        if (problems.length === 0)
          print(
            `all ${members.length} node${members.length === 1 ? '' : 's'} reachable, every link open${lagMaxMs === null ? '' : `, lag within ${lagMaxMs} ms`}`,
          );
      }
      if (problems.length > 0) context.exitCode = 1;
    });
}
