// Goal: the error catalogue in code and docs/errors.md agree, and every code is actually used.
// Method: parse the markdown table; compare codes and statuses; grep the sources for each code.
import t from 'tap';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorCatalogue } from '@tessera/core';

const root = fileURLToPath(new URL('../../../', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

t.test('docs/errors.md lists exactly the catalogue, with the same statuses', async (t) => {
  const doc = readFileSync(join(root, 'docs/errors.md'), 'utf8');
  const rows = [...doc.matchAll(/^\| `(ERR_[A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1], Number(m[2])]);
  const catalogue = Object.entries(errorCatalogue).map(([code, { status }]) => [code, status]);
  t.same(rows.sort(), catalogue.sort());
});

t.test('every catalogued code is raised somewhere in the sources', async (t) => {
  const text = readdirSync(join(root, 'packages'))
    .flatMap((pkg) => {
      try {
        return sources(join(root, 'packages', pkg, 'src'));
      } catch {
        return [];
      }
    })
    .filter((path) => !path.endsWith('errors.ts'))
    .map((path) => readFileSync(path, 'utf8'))
    .join('\n');
  for (const code of Object.keys(errorCatalogue)) t.ok(text.includes(`'${code}'`), `${code} is used`);
});
