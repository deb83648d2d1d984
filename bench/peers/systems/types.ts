/** The narrow interface every peer system implements for the worker (one file per system beside this one). */
import { type WorkerOptions } from '../common.js';

export interface PeerServer {
  /** What the driver needs to know once the server is up (an Automerge document URL, say). */
  readonly info: Record<string, string>;
  /**
   * A: writes records first..first+count-1 the way the system's users load data in bulk, in batches; before
   * each batch it asks `stop(written)` and stops when told to. Answers how many records it wrote.
   */
  load(first: number, count: number, stop: (written: number) => boolean): Promise<number>;
  /**
   * A: writes record `i`; resolves once the system has committed it locally: durable as configured where
   * the system acknowledges writes that way (PouchDB), applied in memory where its idiom persists
   * asynchronously (Yjs, Automerge).
   */
  write(i: number): Promise<void>;
  /** Makes everything durable and closes the store and the server. */
  close(): Promise<void>;
}

export interface PeerContext {
  readonly options: WorkerOptions;
  /** B: to be called whenever a record (by its key) is visible in B's store, at the moment it becomes visible. */
  readonly onVisible: (key: string) => void;
}

export type StartPeer = (context: PeerContext) => Promise<PeerServer>;
