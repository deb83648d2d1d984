// Goal: every package installs and runs on its own — it declares every package its published code imports
// (an undeclared one resolves in this repository only through another package's tree, and fails with
// ERR_MODULE_NOT_FOUND in an app), declares nothing it does not import (a needless install for every user),
// and states a Node range in `engines` that its runtime dependencies support.
// Method: scan each workspace's src/ and bin/ with TypeScript's import pre-processor and compare with its
// package.json; compare `engines` with the installed dependencies' own. The scanner is checked on a sample.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import semver from 'semver';
import { importedPackages, packageImports } from './imports.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

interface Manifest {
  name: string;
  private?: boolean;
  engines?: { node?: string };
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  workspaces?: string[];
}

function manifest(dir: string): Manifest {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest;
}

const rootManifest = manifest(root);
const workspaces = rootManifest.workspaces!.map((dir) => ({ dir: join(root, dir), manifest: manifest(join(root, dir)) }));

t.test('the scanner finds every form of import and leaves out builtins and relative paths', async (t) => {
  const found = importedPackages(
    [
      "import { a } from 'static-pkg';",
      "import type { B } from '@scope/types-only/sub';",
      "export { c } from 'reexported';",
      "export * from '@scope/star';",
      "const d = await import('dynamic-pkg');",
      "const e = require.resolve('resolved-pkg/dist/file.js');",
      "import { readFile } from 'node:fs/promises';",
      "import { join } from 'path';",
      "import { local } from './local.js';",
    ].join('\n'),
  );
  t.same([...found].sort(), ['@scope/star', '@scope/types-only', 'dynamic-pkg', 'reexported', 'resolved-pkg', 'static-pkg']);
});

for (const { dir, manifest: pkg } of workspaces) {
  t.test(`${pkg.name}: dependencies match what src/ and bin/ import`, async (t) => {
    const imports = packageImports(dir, root);
    imports.delete(pkg.name);
    const declared = { ...pkg.dependencies, ...pkg.peerDependencies };
    const undeclared = [...imports].filter(([name]) => declared[name] === undefined).map(([name, files]) => `${name} (imported by ${files.join(', ')})`);
    t.same(undeclared, [], `${pkg.name} imports packages its package.json does not declare in dependencies`);
    const unused = Object.keys(pkg.dependencies ?? {}).filter((name) => !imports.has(name));
    t.same(unused, [], `${pkg.name} declares dependencies that src/ and bin/ never import (move them to devDependencies where they are used)`);
    t.same(Object.keys(pkg.devDependencies ?? {}), [], `${pkg.name}: development tools belong to the root package.json`);
  });
}

t.test('engines: every package states the root range, and every runtime dependency supports all of it', async (t) => {
  const range = rootManifest.engines?.node;
  t.ok(range !== undefined && semver.validRange(range) !== null, `the root package.json states engines.node (${range})`);
  const floor = semver.minVersion(range!)!;
  for (const { manifest: pkg } of workspaces) {
    t.equal(pkg.engines?.node, range, `${pkg.name}: engines.node is the root's`);
    for (const name of Object.keys(pkg.dependencies ?? {})) {
      if (name.startsWith('@tessera/') || name === 'tesseradb') continue;
      const dependency = manifest(join(root, 'node_modules', name));
      const needs = dependency.engines?.node;
      if (needs === undefined) continue;
      t.ok(semver.satisfies(floor, needs), `${pkg.name} → ${name}: engines.node "${needs}" admits our floor ${floor.version}`);
    }
  }
});
