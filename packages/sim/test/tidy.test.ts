// Goal: the link protocol exists once. The simulation runs the daemon's own driver and protocol machine
// (@tessera/sync's SyncDriver and LinkMachine) and adds only a network, processes and checks; the daemon's
// transport adds only sockets. Neither may grow a second copy of the link logic (issue 11: the simulation once
// ran a hand-made copy of it that drifted from the code that ships).
// Method: scan the simulation's sources and the WebSocket transport for the names and frames of the protocol.
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const simSources = readdirSync(join(root, 'sim/src'))
  .filter((name) => name.endsWith('.ts'))
  .map((name) => join(root, 'sim/src', name));

/** What only the protocol machine (packages/sync/src/link/, sender.ts) may use. */
const protocolNames = [
  /\bLinkSender\b/,
  /\bLinkMachine\b/,
  /\bhelloFor\b/,
  /\bwelcomeMatches\b/,
  /\bjudgeHello\b/,
  /\bReceiveQueue\b/,
  /\bForwarding\b/,
  /\bCadenceController\b/,
];
/** Frames built by hand: `{ t: 'hello' … }` and the like. */
const frameLiteral = /\bt:\s*'(hello|welcome|challenge|batch|state|ack|reject|ping|pong|policy|refuse)'/;

function offenders(paths: readonly string[], allowDecode: boolean): string[] {
  const found: string[] = [];
  for (const path of paths) {
    readFileSync(path, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (protocolNames.some((pattern) => pattern.test(line)) || frameLiteral.test(line)) found.push(`${path}:${i + 1}: ${line.trim()}`);
        if (!allowDecode && /\bencodeFrame\b/.test(line)) found.push(`${path}:${i + 1}: ${line.trim()}`);
      });
  }
  return found;
}

t.test('the simulation runs the shipped driver and builds no frame of its own', async (t) => {
  t.ok(simSources.length >= 5, `the simulation's sources were found (${simSources.length})`);
  t.same(offenders(simSources, true), [], 'no protocol machinery or hand-built frame in packages/sim/src');
  const node = readFileSync(join(root, 'sim/src/node.ts'), 'utf8');
  t.match(node, /new SyncDriver\(/, 'a simulated node runs SyncDriver');
});

t.test('the WebSocket transport carries bytes and leaves the protocol to the driver', async (t) => {
  t.same(offenders([join(root, 'sync/src/ws.ts')], true), [], 'no protocol machinery or hand-built frame in ws.ts');
});
