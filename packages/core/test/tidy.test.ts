// Goal: core stays pure — no I/O, clock, timers or randomness (they are arguments), as STYLE.md asks.
// Method: scan every core source file for the forbidden APIs.
import t from 'tap';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const src = fileURLToPath(new URL('../src/', import.meta.url));
// node:crypto is allowed for its pure functions (signature.ts: Ed25519 sign/verify, SHA-256); its randomness is not.
const forbidden = [
  /from 'node:(?!crypto')/,
  /\brandom(Bytes|UUID|Int|Fill)\b|getRandomValues|generateKey/,
  /require\(/,
  /Date\.now\(/,
  /new Date\(\)/,
  /Math\.random\(/,
  /setTimeout\(/,
  /setInterval\(/,
  /\bprocess\.[a-zA-Z]/,
  /performance\.now\(/,
];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

t.test('packages/core/src uses no I/O, clock, timer or randomness', async (t) => {
  const offenders: string[] = [];
  for (const path of files(src)) {
    const lines = readFileSync(path, 'utf8').split('\n');
    lines.forEach((line, i) => {
      for (const pattern of forbidden) if (pattern.test(line)) offenders.push(`${path}:${i + 1}: ${line.trim()}`);
    });
  }
  t.same(offenders, []);
});
