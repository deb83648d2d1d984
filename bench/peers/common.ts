/**
 * What the driver (`run.ts`) and the workers (`worker.ts`, one per peer server process) share: the records,
 * their keys, the wall clock, and the messages they exchange over IPC.
 */
import { type Json } from '@tessera/core';
import { benchDocument } from '../lib.js';

/** Size of every record's JSON: the same 200-byte profile document as the other benchmarks. */
export const valueBytes = 200;

/** Steady-state writes use indices from here, so they never collide with a warm-up's. */
export const steadyIndexBase = 10_000_000;

/**
 * Record `i`'s key. In the differential case every even record must stay in region A: its key starts with
 * `loc-`, so the proxy's tap can look for it in the bytes that crossed and B can count any that arrived.
 */
export function keyFor(i: number, local: boolean): string {
  return `${local ? localKeyPrefix : sharedKeyPrefix}${String(i).padStart(8, '0')}`;
}
export const sharedKeyPrefix = 'doc-';
export const localKeyPrefix = 'loc-';
/** Matches a forbidden key in tapped bytes (latin1 text of the stream). */
export const localKeyPattern = /loc-\d{8}/g;

/** Whether record `i` must stay in A in the differential case. */
export function isLocal(i: number, differential: boolean): boolean {
  return differential && i % 2 === 0;
}

/** Record `i` as a JSON map of nine fields, padded to exactly `valueBytes` (see bench/lib.ts). */
export function recordFor(i: number, local: boolean): Record<string, Json> {
  return benchDocument(i, keyFor(i, local), valueBytes);
}

/** The index in a key, or -1. */
export function indexOfKey(key: string): number {
  return key.startsWith(sharedKeyPrefix) || key.startsWith(localKeyPrefix) ? Number(key.slice(4)) : -1;
}

/**
 * When a load or a catch-up stops: at its deadline, or earlier once it has run `projectAfterMs` and its rate so
 * far says it would not finish by the deadline (so a system far too slow for the case costs `projectAfterMs`,
 * not the whole deadline; the report then gives the rate reached and says the case was cut).
 */
export function shouldStop(done: number, total: number, elapsedMs: number, timeMsMax: number): boolean {
  if (done >= total) return true;
  if (elapsedMs > timeMsMax) return true;
  // Nothing at all yet may be a slow start (a process loading its store): give that longer.
  if (done === 0) return elapsedMs > 3 * projectAfterMs;
  return elapsedMs > projectAfterMs && (total * elapsedMs) / done > timeMsMax;
}
export const projectAfterMs = 20_000;

/** Wall time in ms with sub-ms resolution; comparable across processes after offset correction. */
export function wallNowMs(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The peer systems and how each models many small records. */
export type System = 'pouchdb' | 'yjs' | 'automerge';
/** `per-record`: one document per record; `one-doc`: every record an entry of one big map document. */
export type Model = 'per-record' | 'one-doc';

/** How a worker is started (JSON in its argv). */
export interface WorkerOptions {
  readonly system: System;
  readonly model: Model;
  readonly role: 'A' | 'B';
  readonly dataDir: string;
  /** Where this server listens (its own clients' port; for A also what B reaches through the proxy). */
  readonly port: number;
  /** B only: A's address through the proxy, `127.0.0.1:port`. */
  readonly upstream: string | null;
  /** Half of the records (even indices) must not leave A. */
  readonly differential: boolean;
  /** B of a one-doc Automerge model: the document's URL, which A made. */
  readonly docUrl: string | null;
}

/** Driver → worker. */
export type Request =
  | { readonly op: 'clock' }
  /** A: write records first..first+count-1 as fast as the system's bulk idiom allows. */
  | { readonly op: 'load'; readonly first: number; readonly count: number; readonly timeMsMax: number }
  /** A: write records first.. in an open loop at `ratePerSecond`; answers each write's commit time. */
  | { readonly op: 'steady'; readonly first: number; readonly count: number; readonly ratePerSecond: number; readonly issueTimeMsMax: number }
  /** B: resolves once `count` shared records are visible, or at the deadline. */
  | { readonly op: 'waitVisible'; readonly count: number; readonly timeMsMax: number }
  /** B: first-visible wall times of records with index ≥ `from`. */
  | { readonly op: 'visibleTimes'; readonly from: number }
  /** Make everything durable and close the stores; the process then exits. */
  | { readonly op: 'close' };

export interface VisibleState {
  readonly shared: number;
  /** Records that should never have left A and are visible in B. */
  readonly leaked: number;
  /** When the count was reached (wall ms), or null at the deadline. */
  readonly reachedAtMs: number | null;
}

export interface SteadyResult {
  /** [index, issued wall ms, committed wall ms] per write that was acknowledged. */
  readonly commits: readonly (readonly [number, number, number])[];
  /** Writes issued (the open loop issues on schedule whether or not earlier ones were acknowledged). */
  readonly issued: number;
  /** From the first write issued to the last. */
  readonly issueMs: number;
  /** The writer fell behind by more than the bound and stopped issuing. */
  readonly cutShort: boolean;
}

export type Reply = { readonly id: number; readonly ok: true; readonly result: unknown } | { readonly id: number; readonly ok: false; readonly error: string };
