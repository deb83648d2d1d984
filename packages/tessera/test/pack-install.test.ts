// Goal: what we would publish installs and works outside this repository — with production dependencies only,
// so that nothing resolves through a development tool's tree. An app imports the embedded API with its types,
// opens a replica and writes to it, and the `tessera` command the package brings reads that data directory.
// Method: `npm pack` every publishable workspace; `npm install --omit=dev` the tarballs into a temporary app
// (third-party dependencies from the registry, through npm's cache); run a script there, the CLI from the
// app's node_modules/.bin, and `tsc --strict` on a file of the app that uses the types.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../../', import.meta.url));
/** Packing, an install from the cache, a few node processes and one tsc run on a loaded 2-core machine. */
const testTimeoutMs = 300_000;
t.setTimeout(testTimeoutMs);

interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  workspaces?: string[];
}

async function manifest(dir: string): Promise<Manifest> {
  return JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as Manifest;
}

const appScript = `
import { Replica, parsePolicy, startDaemon } from 'tesseradb';
const path = process.argv[2];
const policy = parsePolicy('version: 1\\nregions:\\n  eu-west: { jurisdiction: eu }\\ndatasets:\\n  visits: { type: counter, placement: global }\\n', 'inline');
const replica = await Replica.open({ path, node: 'eu-west-1', region: 'eu-west', policy });
await replica.put('catalog', 'lamp', { name: 'Lamp' });
await replica.counter('visits', 'home').increment(3);
const doc = await replica.get('catalog', 'lamp');
const visits = await replica.get('visits', 'home');
await replica.close();
console.log(JSON.stringify({ lamp: doc.value, visits: visits.value, startDaemon: typeof startDaemon }));
`;

const typedApp = `
import { Replica, parsePolicy, startDaemon, type Daemon, type ReplicaOptions, type WriteResult } from 'tesseradb';
const options: ReplicaOptions = { path: 'data', node: 'eu-west-1', region: 'eu-west', policy: parsePolicy('version: 1', 'inline') };
export async function write(): Promise<WriteResult> {
  const replica: Replica = await Replica.open(options);
  return replica.put('catalog', 'lamp', { name: 'Lamp' });
}
export const start: (options: { configPath: string; nodeId: string }) => Promise<Daemon> = startDaemon;
`;

t.test('packed tarballs install with production dependencies and work from an app', async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'tessera-pack-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const rootManifest = await manifest(root);
  const publishable: string[] = [];
  for (const dir of rootManifest.workspaces!) if (!(await manifest(join(root, dir))).private) publishable.push(dir);

  const packed = JSON.parse(
    (await run('npm', ['pack', '--json', '--pack-destination', work, ...publishable.flatMap((dir) => ['-w', dir])], { cwd: root, maxBuffer: 64 * 1024 * 1024 }))
      .stdout,
  ) as Array<{
    name: string;
    filename: string;
    files: Array<{ path: string; mode: number }>;
  }>;
  t.same(
    packed.map((p) => p.name).sort(),
    (await Promise.all(publishable.map(async (dir) => (await manifest(join(root, dir))).name))).sort(),
    'one tarball per publishable package',
  );
  for (const p of packed) {
    const paths = p.files.map((file) => file.path);
    t.ok(paths.includes('dist/index.js') && paths.includes('dist/index.d.ts'), `${p.name}: ESM entry and its types`);
    t.notOk(
      paths.some((path) => path.endsWith('.tsbuildinfo') || path.includes('/test/')),
      `${p.name}: no build state, no tests`,
    );
  }
  const shim = packed.find((p) => p.name === 'tesseradb')?.files.find((file) => file.path === 'bin/tessera.js');
  t.ok(shim !== undefined && (shim.mode & 0o111) !== 0, 'tesseradb ships its bin, executable');

  const app = join(work, 'app');
  await run('mkdir', [app]);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  await run('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', ...packed.map((p) => join(work, p.filename))], {
    cwd: app,
    maxBuffer: 64 * 1024 * 1024,
  });
  const lock = JSON.parse(await readFile(join(app, 'package-lock.json'), 'utf8')) as { packages: Record<string, { resolved?: string; dev?: boolean }> };
  for (const p of packed) {
    t.match(lock.packages[`node_modules/${p.name}`]?.resolved, /^file:/, `${p.name} came from its tarball, not from a registry`);
  }
  t.notOk(
    Object.values(lock.packages).some((entry) => entry.dev === true),
    'no development dependency was installed',
  );

  // The embedded API, from the app.
  await writeFile(join(app, 'app.mjs'), appScript);
  const data = join(work, 'data');
  const result = JSON.parse((await run(process.execPath, ['app.mjs', data], { cwd: app })).stdout) as unknown;
  t.same(result, { lamp: { name: 'Lamp' }, visits: 3, startDaemon: 'function' }, 'a replica opened, written and read; the daemon is there too');

  // The command, from the app's bin folder.
  const tessera = join(app, 'node_modules', '.bin', 'tessera');
  t.equal((await run(tessera, ['--version'], { cwd: app })).stdout.trim(), (await manifest(join(root, 'packages/tessera'))).version, 'tessera --version');
  const summary = JSON.parse((await run(tessera, ['inspect', data, 'summary', '--json'], { cwd: app })).stdout) as {
    node: string;
    datasets: Array<{ dataset: string; live: number }>;
  };
  t.equal(summary.node, 'eu-west-1', "tessera inspect reads the app's data directory");
  t.same(
    summary.datasets.map((d) => [d.dataset, d.live]).sort(),
    [
      ['catalog', 1],
      ['visits', 1],
    ],
    'and finds what the app wrote',
  );

  // The types, as a strict TypeScript app sees them (the repository's compiler and Node types; the app has neither).
  await writeFile(join(app, 'typed.ts'), typedApp);
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const typeRoots = join(root, 'node_modules', '@types');
  const compiled = await run(
    process.execPath,
    [
      tsc,
      '--noEmit',
      '--strict',
      '--skipLibCheck',
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      '--target',
      'es2022',
      '--typeRoots',
      typeRoots,
      '--types',
      'node',
      'typed.ts',
    ],
    { cwd: app },
  ).then(
    () => '',
    (error: { stdout?: string }) => error.stdout ?? String(error),
  );
  t.equal(compiled, '', 'an app using the exported types compiles under strict');
});
