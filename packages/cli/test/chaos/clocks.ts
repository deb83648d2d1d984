/**
 * Skewed clocks for the daemons of a chaos run, without a test hook in the product: each daemon runs under
 * Debian's libfaketime (`apt-get install faketime`), preloaded, which offsets what `clock_gettime(CLOCK_REALTIME)`
 * and `gettimeofday` return — Node's `Date.now()` — by the amount in a file of the node's own. The monotonic
 * clock (`performance.now()`, timers) stays true (`FAKETIME_DONT_FAKE_MONOTONIC`), as it does on a machine whose
 * wall clock is stepped. libfaketime reads the file again every second (`FAKETIME_CACHE_DURATION`), so writing
 * it makes the clock jump within a second or two, forward or back. Every run checks the result on the shipped
 * daemon: the HTTP `Date` header each node sends must show its offset.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { secureFetch } from './history.js';

/** Where Debian's `libfaketime` package puts the library. */
export const libfaketimePath = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
/** How far a node's `Date` header may be from its intended offset: the header has whole seconds, the file is re-read each second. */
export const clockToleranceMs = 2_500;

/** The clock files of one cluster. */
export class Clocks {
  private readonly offsetsMs = new Map<string, number>();

  constructor(private readonly dir: string) {
    if (!existsSync(libfaketimePath)) {
      throw new Error(`${libfaketimePath} is missing: chaos runs skew the daemons' clocks with libfaketime; install it with: apt-get install faketime`);
    }
  }

  /** The file libfaketime reads for `node`. */
  fileOf(node: string): string {
    return join(this.dir, `clock-${node}`);
  }

  /** Sets `node`'s offset (its file; the daemon's clock follows within about a second). */
  async set(node: string, offsetMs: number): Promise<void> {
    this.offsetsMs.set(node, offsetMs);
    // libfaketime's relative form: "+1.5" or "-0.25" seconds.
    await writeFile(this.fileOf(node), `${offsetMs >= 0 ? '+' : '-'}${(Math.abs(offsetMs) / 1000).toFixed(3)}\n`);
  }

  offsetOf(node: string): number {
    return this.offsetsMs.get(node) ?? 0;
  }

  /** The environment of `node`'s daemon: the test's own plus the preload. */
  envOf(node: string): NodeJS.ProcessEnv {
    return {
      ...process.env,
      LD_PRELOAD: [libfaketimePath, process.env.LD_PRELOAD].filter((part) => part !== undefined && part !== '').join(':'),
      FAKETIME_TIMESTAMP_FILE: this.fileOf(node),
      FAKETIME_CACHE_DURATION: '1',
      FAKETIME_DONT_FAKE_MONOTONIC: '1',
    };
  }

  /**
   * The offset `url`'s daemon shows in its `Date` header, measured against this process's clock (the header
   * has whole seconds: the midpoint of the second it names is used).
   */
  static async observedOffsetMs(url: string): Promise<number | null> {
    const beforeMs = Date.now();
    const response = await secureFetch()(new URL('/healthz', url), { signal: AbortSignal.timeout(5_000) }).catch(() => null);
    const afterMs = Date.now();
    const header = response?.headers.get('date');
    await response?.arrayBuffer().catch(() => undefined);
    if (header === null || header === undefined) return null;
    return Date.parse(header) + 500 - (beforeMs + afterMs) / 2;
  }
}
