/**
 * The dashboard's files (DESIGN §7): plain HTML, ES modules and CSS from `packages/server/static/`, served as
 * they are — there is no build step — plus uPlot's ES module and stylesheet from its package. Only the files
 * named in `dashboardFiles` are served: a request names a file of that list or gets a 404, so no path can
 * reach any other file. Each file is read once and kept in memory (they are a few hundred kilobytes in all).
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { TesseraError } from '@tessera/core';

/** The folder of the dashboard's own files; next to `src/` and `dist/`, so it resolves from either. */
export const dashboardDir = fileURLToPath(new URL('../static/', import.meta.url));

const require = createRequire(import.meta.url);

const contentTypes = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
} as const;

/** Every file the dashboard serves, by the name in its URL (`/static/<name>`; `index.html` is also `/`). */
export const dashboardFiles: ReadonlyMap<string, { readonly path: () => string; readonly contentType: string }> = new Map([
  ['index.html', { path: () => `${dashboardDir}index.html`, contentType: contentTypes.html }],
  ['app.js', { path: () => `${dashboardDir}app.js`, contentType: contentTypes.js }],
  ['model.js', { path: () => `${dashboardDir}model.js`, contentType: contentTypes.js }],
  ['view.js', { path: () => `${dashboardDir}view.js`, contentType: contentTypes.js }],
  ['charts.js', { path: () => `${dashboardDir}charts.js`, contentType: contentTypes.js }],
  ['format.js', { path: () => `${dashboardDir}format.js`, contentType: contentTypes.js }],
  ['dashboard.css', { path: () => `${dashboardDir}dashboard.css`, contentType: contentTypes.css }],
  // From the uplot package wherever npm put it (hoisted or not), never a hard-coded node_modules path.
  ['uPlot.esm.js', { path: () => require.resolve('uplot/dist/uPlot.esm.js'), contentType: contentTypes.js }],
  ['uPlot.min.css', { path: () => require.resolve('uplot/dist/uPlot.min.css'), contentType: contentTypes.css }],
]);

/** Longest file name a request may give; anything longer is not on the list anyway. */
export const dashboardFileNameLengthMax = 64;

/** One file ready to send. */
export interface DashboardFile {
  readonly name: string;
  readonly bytes: Buffer;
  readonly contentType: string;
}

const loaded = new Map<string, Promise<DashboardFile>>();

/** The dashboard file `name` (as it appears in the URL, not decoded). Throws `ERR_NOT_FOUND` for any other name. */
export async function dashboardFile(name: string): Promise<DashboardFile> {
  const entry = name.length <= dashboardFileNameLengthMax ? dashboardFiles.get(name) : undefined;
  if (entry === undefined) {
    throw new TesseraError(
      'ERR_NOT_FOUND',
      `no dashboard file ${JSON.stringify(name.slice(0, dashboardFileNameLengthMax))}: the files are ${[...dashboardFiles.keys()].join(', ')}`,
    );
  }
  let file = loaded.get(name);
  if (file === undefined) {
    file = readFile(entry.path()).then((bytes) => ({ name, bytes, contentType: entry.contentType }));
    // A failed read (a broken install) is not remembered: the next request tries again.
    file.catch(() => loaded.delete(name));
    loaded.set(name, file);
  }
  return file;
}

/** Headers of a dashboard file: revalidated on every load (a daemon upgrade shows at once), never sniffed. */
export function dashboardHeaders(file: DashboardFile): Record<string, string> {
  const headers: Record<string, string> = { 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' };
  if (file.contentType === contentTypes.html) {
    // The page loads only its own files and calls only its own node's API.
    headers['content-security-policy'] = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";
    headers['referrer-policy'] = 'no-referrer';
  }
  return headers;
}
