/**
 * The narrow port a sync driver works through: the replica, clocks, randomness, deferred I/O, timers and a
 * transport. The daemon implements it with real time, `setTimeout` and WebSockets (ws.ts); the simulation
 * with a simulated clock, an event queue and a simulated network, so that both run the same driver and the
 * same link machines.
 */
import { type Replica } from '@tessera/store';
import { type ConnId } from './link/types.js';

/** What happens on a connection, as the transport reports it. Each connection closes exactly once. */
export interface ConnEvents {
  /** A dialed connection is established (WebSocket open). */
  open(): void;
  message(bytes: Uint8Array): void;
  close(code: number, reason: string): void;
}

/** A transport: outgoing connections, frames and closes. Incoming connections reach `SyncDriver.accept`. */
export interface Transport {
  dial(conn: ConnId, url: string, events: ConnEvents): void;
  send(conn: ConnId, bytes: Uint8Array): void;
  /** Closes with a code and reason (a WebSocket close handshake, or at once when the socket never opened). */
  close(conn: ConnId, code: number, reason: string): void;
}

/** The outcome of deferred I/O. */
export type IoOutcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

/** Everything a sync driver touches outside itself. */
export interface SyncHost {
  readonly replica: Replica;
  readonly transport: Transport;
  /** The link clock: monotonic milliseconds (whole). */
  now(): number;
  /** The wall clock, for pongs and the deadlines of session-token reads. */
  wallNow(): number;
  /** A number in [0, 1). */
  random(): number;
  /** `length` random bytes (handshake nonces). */
  randomBytes(length: number): Uint8Array;
  /** Runs storage work; `done` hears the outcome later (never in the same turn). */
  io<T>(label: string, work: () => Promise<T>, done: (outcome: IoOutcome<T>) => void): void;
  /** Calls `fn` after `delayMs`; returns a cancel function. */
  timer(delayMs: number, label: string, fn: () => void): () => void;
  /** Structured events; never given keys or values. */
  log(event: Record<string, unknown>): void;
}
