/**
 * `tessera audit` and `tessera audit verify`: list a region's audit log, and check its hash chain — on a
 * running node (`--url`) or offline on a data directory (`--data`, read-only; the node must be stopped).
 */
import { type Command } from 'commander';
import { TesseraError } from '@tessera/core';
import { type AuditEntry, type AuditVerdict, masterKeyFromEnv, openDataDirectorySnapshot, verifyStoredAudit } from '@tessera/store';
import { callApi } from '../client.js';
import { type ConnectionOptions, addConnectionOptions, addTokenOptions, nodeApiOf, urlDefault } from '../options.js';
import { table } from './status.js';

function describe(entry: AuditEntry): string {
  return Object.entries(entry.details)
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join(' ');
}

/** Registers `audit`. */
export function registerAuditCommands(program: Command, print: (line: string) => void, context: { exitCode: number }): void {
  // `--url` has no commander default: `audit verify --url` is parsed as this option (commander lets a parent's
  // options follow a subcommand), and verify must see whether it was given.
  const audit = addConnectionOptions(
    program.command('audit').description("list a region's hash-chained audit log (policy changes, denied sends, rejections, purges, quarantine)"),
  )
    .option('--after <seq>', 'entries after this sequence number', '0')
    .option('--limit <n>', 'entries to list', '100')
    .option('--json', 'print as JSON')
    .action(async (options: ConnectionOptions & { after: string; limit: string; json?: boolean }) => {
      const answer = (await callApi(
        await nodeApiOf(options),
        'GET',
        `/v1/audit?after=${encodeURIComponent(options.after)}&limit=${encodeURIComponent(options.limit)}`,
      )) as { region: string; length: number; entries: AuditEntry[] };
      if (options.json) print(JSON.stringify(answer, null, 2));
      else {
        print(`audit log of ${answer.region}: ${answer.length} entries`);
        print(
          table(
            ['seq', 'time', 'kind', 'details'],
            answer.entries.map((e) => [String(e.seq), new Date(e.atMs).toISOString(), e.kind, describe(e)]),
          ),
        );
      }
    });

  addTokenOptions(
    audit
      .command('verify')
      .description("check the audit log's hash chain: any edited, removed or reordered entry is reported (exit 1)")
      .option('--url <url>', `node API (default: $TESSERA_URL, else ${urlDefault})`),
  )
    .option('--data <dir>', "a stopped node's data directory (read-only)")
    .option('--json', 'print as JSON')
    .action(async (own: ConnectionOptions & { data?: string; json?: boolean }) => {
      // After `verify`, commander hands --url and --json to `audit` (it has options of the same names).
      const parent = audit.opts() as ConnectionOptions & { json?: boolean };
      const options = {
        ...own,
        url: own.url ?? parent.url,
        token: own.token ?? parent.token,
        tokenFile: own.tokenFile ?? parent.tokenFile,
        json: own.json ?? parent.json,
      };
      if (options.url !== undefined && options.data !== undefined) throw new TesseraError('ERR_OPTION_INVALID', 'give either --url or --data, not both');
      let verdict: AuditVerdict & { region?: string };
      if (options.data !== undefined) {
        // A snapshot: opening a LevelDB directory writes to it, and a check must not touch what it checks.
        const snapshot = await openDataDirectorySnapshot(options.data, await masterKeyFromEnv());
        try {
          verdict = await verifyStoredAudit(snapshot.reader);
        } finally {
          await snapshot.close();
        }
      } else {
        verdict = (await callApi(await nodeApiOf(options), 'GET', '/v1/audit/verify')) as AuditVerdict & { region: string };
      }
      if (options.json) print(JSON.stringify(verdict, null, 2));
      else
        print(
          verdict.ok
            ? `audit log intact: ${verdict.entries} entries, hash chain verified`
            : `audit log BROKEN after ${verdict.entries} entries: ${verdict.problem}`,
        );
      if (!verdict.ok) context.exitCode = 1;
    });
}
