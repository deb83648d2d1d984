/** Helpers shared by the benchmarks: percentiles, spreads, aligned markdown tables, the machine's description. */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import os from 'node:os';
import { type Json, assert } from '@tessera/core';

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export function formatRange(value: Spread, format: (n: number) => string): string {
  return `${format(value.min)}–${format(value.max)}`;
}

export function formatPercent(ratio: number): string {
  return `${(ratio * 100).toFixed(1)}%`;
}

/** A markdown table whose columns line up in a terminal too; `right` marks numeric columns. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[], right: readonly boolean[]): string {
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((cell, column) => (right[column] ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!))).join(' | ')} |`;
  const rule = `|${widths.map((width, column) => (right[column] ? `${'-'.repeat(width + 1)}:` : `${'-'.repeat(width + 2)}`)).join('|')}|`;
  return [line(headers), rule, ...rows.map(line)].join('\n');
}

/** The filesystem type holding `path` (best effort, Linux only): fsync on tmpfs would measure nothing. */
export function filesystemOf(path: string): string {
  try {
    let best = { mountPoint: '', type: 'unknown' };
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [, mountPoint, type] = line.split(' ');
      if (mountPoint === undefined || type === undefined) continue;
      const inside = path === mountPoint || path.startsWith(mountPoint.endsWith('/') ? mountPoint : `${mountPoint}/`);
      if (inside && mountPoint.length > best.mountPoint.length) best = { mountPoint, type };
    }
    return `${best.type} at ${best.mountPoint || '?'}`;
  } catch {
    return 'unknown';
  }
}

export function machineInfo(tempRoot: string) {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    coresCount: cpus.length,
    memoryBytesTotal: os.totalmem(),
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    osVersion: os.version(),
    loadAverage1m: os.loadavg()[0]!,
    tempDir: os.tmpdir(),
    tempFilesystem: filesystemOf(tempRoot),
  };
}

/** Nearest-rank percentile of ascending samples. */
export function percentile(sortedAscending: Float64Array, quantile: number): number {
  assert(sortedAscending.length > 0, 'percentile of no samples');
  const rank = Math.ceil(quantile * sortedAscending.length);
  return sortedAscending[Math.min(sortedAscending.length, Math.max(1, rank)) - 1]!;
}

export function median(values: readonly number[]): number {
  assert(values.length > 0, 'median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export function spread(values: readonly number[]): Spread {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

/** The options every benchmark takes, and how many runs they ask for. */
export interface BenchArgs {
  readonly runs: number;
  readonly quick: boolean;
  /** Every parsed option, including the script's own. */
  readonly values: Readonly<Record<string, string | boolean | undefined>>;
}

/**
 * Parses `--runs N`, `--quick`, `--help` and the script's own options (strings or flags). Bad arguments print
 * the usage and exit 2; `--help` prints it and exits 0. `--quick` means one run unless `--runs` says otherwise.
 */
export function parseBenchArgs(
  argv: readonly string[],
  usage: string,
  own: Readonly<Record<string, 'string' | 'boolean'>>,
  runs: { readonly default: number; readonly max: number },
): BenchArgs {
  const options: Record<string, { type: 'string' | 'boolean'; default?: boolean }> = {
    runs: { type: 'string' },
    quick: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  };
  for (const [name, type] of Object.entries(own)) options[name] = type === 'boolean' ? { type, default: false } : { type };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...argv], options, strict: true }) as { values: Record<string, string | boolean | undefined> });
  } catch (error) {
    console.error(`${(error as Error).message}\n${usage}`);
    process.exit(2);
  }
  if (values.help === true) {
    console.log(usage);
    process.exit(0);
  }
  const quick = values.quick === true;
  let count = quick ? 1 : runs.default;
  if (values.runs !== undefined) {
    count = Number(values.runs);
    if (!Number.isSafeInteger(count) || count < 1 || count > runs.max) {
      console.error(`--runs ${String(values.runs)} is invalid: use an integer from 1 to ${runs.max}`);
      process.exit(2);
    }
  }
  return { runs: count, quick, values };
}

/** A realistic small profile document with this `id`, padded so that its JSON is exactly `valueBytes` long. */
export function benchDocument(i: number, id: string, valueBytes: number): Record<string, Json> {
  const value: Record<string, Json> = {
    id,
    name: 'Ada Lovelace',
    email: `ada.${i}@example.com`,
    city: 'Dublin',
    plan: 'pro',
    visits: i % 1_000,
    active: i % 2 === 0,
    score: 0.5,
    note: '',
  };
  const paddingBytes = valueBytes - JSON.stringify(value).length;
  assert(paddingBytes >= 0, `value ${i} is over ${valueBytes} bytes before padding`);
  value.note = 'n'.repeat(paddingBytes);
  return value;
}
