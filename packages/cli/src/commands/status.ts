/** `tessera status`: links, lag, backlog, rates and cadence as seen from one node. */
import { type Command } from 'commander';
import { TesseraError } from '@tessera/core';
import { callApi, parseBaseUrl } from '../client.js';

interface LinkView {
  rates: { sentEntriesPerSecond: number; sentBytesPerSecond: number; receivedEntriesPerSecond: number }; cadence: string;
  peer: string; region: string; state: string; role: string; lagMs: number; backlogEntries: number; inflightBatches: number;
  windowBatches: number; rttMs: number | null; cursor: number; lastError: string | null;
  sent: { entries: number; wireBytes: number }; received: { entries: number; wireBytes: number };
}

/** Formats rows as an aligned text table. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function bytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** Registers `status`. */
export function registerStatusCommand(program: Command, print: (line: string) => void, context: { exitCode: number }): void {
  program.command('status')
    .description('show this node\'s links: state, lag, backlog, round trip, cadence window, traffic; exit 1 if a link is down or lag is too high')
    .option('--url <url>', 'node API', 'http://127.0.0.1:7101')
    .option('--lag-max <ms>', 'exit 1 when any link lags more than this many milliseconds')
    .option('--json', 'print the status as JSON')
    .action(async (options: { url: string; lagMax?: string; json?: boolean }) => {
      const lagMaxMs = options.lagMax === undefined ? null : Number(options.lagMax);
      if (lagMaxMs !== null && (!Number.isFinite(lagMaxMs) || lagMaxMs < 0)) {
        throw new TesseraError('ERR_OPTION_INVALID', `--lag-max ${JSON.stringify(options.lagMax)} must be a non-negative number of milliseconds`);
      }
      const status = await callApi(parseBaseUrl(options.url), 'GET', '/v1/status') as { node: string; region: string; lastSeq: number; links: LinkView[] };
      if (options.json) print(JSON.stringify(status, null, 2));
      else {
        print(`node ${status.node} (${status.region}), log head ${status.lastSeq}`);
        print(table(
          ['peer', 'region', 'state', 'lag', 'backlog', 'in flight', 'cadence', 'window', 'rtt', 'rate out', 'rate in', 'sent', 'received', 'last error'],
          status.links.map((l) => [
            l.peer, l.region, l.state, `${l.lagMs} ms`, String(l.backlogEntries), String(l.inflightBatches), l.cadence, String(l.windowBatches),
            l.rttMs === null ? '-' : `${l.rttMs} ms`, `${l.rates.sentEntriesPerSecond}/s ${bytes(l.rates.sentBytesPerSecond)}/s`,
            `${l.rates.receivedEntriesPerSecond}/s`, `${l.sent.entries} (${bytes(l.sent.wireBytes)})`,
            `${l.received.entries} (${bytes(l.received.wireBytes)})`, l.lastError ?? '',
          ]),
        ));
      }
      const down = status.links.filter((l) => l.state !== 'open');
      const lagging = lagMaxMs === null ? [] : status.links.filter((l) => l.lagMs > lagMaxMs);
      if (down.length > 0 || lagging.length > 0) {
        context.exitCode = 1;
        if (!options.json) {
          for (const l of down) print(`link to ${l.peer} is ${l.state}`);
          for (const l of lagging) print(`link to ${l.peer} lags ${l.lagMs} ms (limit ${lagMaxMs} ms)`);
        }
      }
    });
}
