/**
 * A Chromium for browser tests that npm installs: `@sparticuz/chromium` ships a headless Chromium build, and the
 * NSS and expat libraries it links, compressed inside its registry package. Nothing is downloaded, and no system
 * browser is used even when one is installed: every machine runs the same build.
 *
 * The package's own `executablePath()` unpacks into the shared temporary directory, in place and without a lock
 * (two test runs race; a run killed mid-write leaves a truncated binary that later runs take as done). Here the
 * files are unpacked into a staging folder and renamed into `node_modules/.cache` once complete.
 */
import { createReadStream, createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createBrotliDecompress } from 'node:zlib';
import { type Browser, chromium } from 'playwright-core';
import * as tar from 'tar';

/** The package's compressed files (`bin/` beside its build, as its own `getBinPath` finds them). */
const packBinDir = join(dirname(fileURLToPath(import.meta.resolve('@sparticuz/chromium'))), '..', '..', 'bin');
const packVersion = (JSON.parse(readFileSync(join(packBinDir, '..', 'package.json'), 'utf8')) as { version: string }).version;
/** One folder per version of the package, so an upgrade unpacks anew. */
const cacheDir = fileURLToPath(new URL(`../../../node_modules/.cache/tessera-chromium/${packVersion}/`, import.meta.url));

/**
 * Flags for a headless run as root on a machine without a network: no sandbox (root), no GPU, and none of the
 * background requests (updates, safe browsing, sync) that a closed network refuses many at a time.
 * `LANG` is set too: from the C locale this build derives the language `en-US@posix`, which the page's Intl rejects.
 */
export const browserArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** Unpacks the browser, its libraries and fonts once; returns the folder. Safe against concurrent runs. */
export async function unpackBrowser(): Promise<string> {
  if (existsSync(join(cacheDir, 'chromium'))) return cacheDir;
  const staging = `${cacheDir.replace(/\/$/, '')}.staging-${process.pid}-${Date.now()}`;
  await mkdir(staging, { recursive: true });
  try {
    await pipeline(createReadStream(join(packBinDir, 'chromium.br')), createBrotliDecompress(), createWriteStream(join(staging, 'chromium'), { mode: 0o755 }));
    // lib/: libnss3, libnspr4, libexpat and their companions, built for Amazon Linux 2023 (glibc 2.34): they
    // run on any newer glibc, so the browser needs no system package.
    await tar.x({ file: join(packBinDir, 'al2023.tar.br'), cwd: staging, brotli: true });
    await tar.x({ file: join(packBinDir, 'fonts.tar.br'), cwd: staging, brotli: true });
    // The package's fonts.conf names Lambda's folders; ours names the bundled fonts and the system's.
    await writeFile(
      join(staging, 'fonts', 'fonts.conf'),
      [
        '<?xml version="1.0"?>',
        '<!DOCTYPE fontconfig SYSTEM "fonts.dtd">',
        '<fontconfig>',
        `  <dir>${join(cacheDir, 'fonts')}</dir>`,
        '  <dir>/usr/share/fonts</dir>',
        `  <cachedir>${join(cacheDir, 'fonts-cache')}</cachedir>`,
        '</fontconfig>',
        '',
      ].join('\n'),
    );
    await mkdir(dirname(cacheDir), { recursive: true });
    await rename(staging, cacheDir);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    // Another run finished first: its copy is complete.
    if (existsSync(join(cacheDir, 'chromium'))) return cacheDir;
    throw error;
  }
  return cacheDir;
}

/** Launches the npm-installed Chromium headless through Playwright. */
export async function launchBrowser(): Promise<Browser> {
  const dir = await unpackBrowser();
  const libraryPath = [join(dir, 'lib'), ...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter((p) => p !== '')].join(':');
  return chromium.launch({
    executablePath: join(dir, 'chromium'),
    headless: true,
    args: browserArgs,
    env: { ...process.env, LD_LIBRARY_PATH: libraryPath, FONTCONFIG_PATH: join(dir, 'fonts'), LANG: 'en_US.UTF-8' },
  });
}
