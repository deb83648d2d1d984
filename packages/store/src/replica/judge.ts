/**
 * The sender's side of residency: which log entries (or scanned states) may go to a region, judged on the
 * document as it stands here now (`mayShip`, core) — quarantine defers a change, a release lets it go — and
 * the head of each document that may go, which the link attaches so the receiver judges alike.
 */
import { type DocState, docFacts, docHead, encodeDoc, mayShip } from '@tessera/core';
import { docKey } from '../layout.js';
import { type LogEntry } from '../types.js';
import { type ReplicaCore } from './core.js';

/** What `sendable` answers. */
export interface Sendable {
  /** Per entry, whether it may go to the region. */
  readonly allowed: boolean[];
  /** Entries the shadow policy would keep back (they still go). */
  readonly shadowDenied: number;
  /** Per document that may go (`docKey`), its head as it stands here now, encoded. */
  readonly heads: ReadonlyMap<string, Uint8Array>;
}

/** Judges `entries` for `region`. */
export async function sendable(c: ReplicaCore, entries: readonly LogEntry[], region: string): Promise<Sendable> {
  const policy = c.enforced;
  const shadow = c.shadowed;
  const pinned = await c.pinAll(entries);
  try {
    let shadowDenied = 0;
    const heads = new Map<string, Uint8Array>();
    const states = new Map<string, DocState | null>();
    const allowed = entries.map((entry) => {
      const id = docKey(entry.dataset, entry.key);
      const state = pinned.get(id)!.committed;
      states.set(id, state);
      const facts = state === null ? null : docFacts(entry.dataset, entry.key, state);
      const kind = entry.kind ?? 'change';
      const ok = mayShip(policy, facts, kind, entry.to ?? [], region);
      if (ok && kind !== 'purge' && shadow !== null && !mayShip(shadow, facts, kind, entry.to ?? [], region)) shadowDenied++;
      // A purge notice goes with the copy's head as it stands now, too: facts learnt since the notice was
      // logged (a quarantine, a later policy's reasons) reach a region whose copy lags them.
      if (ok && state !== null && !heads.has(id)) heads.set(id, encodeDoc(docHead(state)));
      return ok;
    });
    return { allowed, shadowDenied, heads };
  } finally {
    for (const entry of pinned.values()) c.unpin(entry);
  }
}
