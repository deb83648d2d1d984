/** Helpers shared by the benchmarks: percentiles, spreads, aligned markdown tables, the machine's description. */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { assert } from '@tessera/core';

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
