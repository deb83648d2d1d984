/**
 * What a chaos run writes, and where the policy lets it live. Every document belongs to a family; its key
 * names the family, the client that owns it and (for restricted families) its origin region, and its value
 * carries a marker string, so that the proxies' taps and a scan of the data directories can tell exactly
 * which document a byte belongs to.
 */

/** The regions of a chaos cluster, in node order. */
export const chaosRegions = ['eu-west', 'eu-central', 'us-east'] as const;
export type ChaosRegion = (typeof chaosRegions)[number];

/** The policy of a chaos run: a global dataset, a counter and a set, a local one, a regions-placed one, a pii rule, quarantine release. */
export const chaosPolicyText = `version: 1
regions:
  eu-west:    { jurisdiction: eu, location: [53.3, -6.3] }
  eu-central: { jurisdiction: eu, location: [50.1, 8.7] }
  us-east:    { jurisdiction: us, location: [38.9, -77.0] }
datasets:
  catalog: { type: map, placement: global, priority: high }
  visits:  { type: counter, placement: global }
  carts:   { type: set, placement: global }
  audits:  { type: map, placement: local }
  orders:  { type: map, placement: { regions: [eu-west, us-east] } }
rules:
  - name: pii stays in its jurisdiction
    deny: "'pii' in doc.tags && target.jurisdiction != source.jurisdiction"
  - name: reviewed documents leave quarantine
    release: "'reviewed' in doc.tags"
`;

/** Regions that may hold `orders`. */
export const orderRegions: readonly ChaosRegion[] = ['eu-west', 'us-east'];

export function jurisdictionOf(region: string): string {
  return region.split('-')[0]!;
}

/**
 * Families of documents. `own`: a client's documents, written whole; `shared`: one field per client;
 * `hot`: one field every client writes (LWW conflicts); `counter`, `cart`: shared counters and sets; `del`:
 * written, then deleted, by one client; `local`, `order`, `pii`, `quar`: restricted by the policy.
 */
export type Family = 'own' | 'shared' | 'hot' | 'counter' | 'cart' | 'del' | 'local' | 'order' | 'pii' | 'quar';

/** Where a document lives: its dataset, key and family; `origin` for documents restricted to their region. */
export interface DocId {
  readonly dataset: string;
  readonly key: string;
  readonly family: Family;
  readonly origin: ChaosRegion | null;
}

export const docKeyOf = (dataset: string, key: string): string => `${dataset}/${key}`;

/** The family of a key the workload writes (keys are built by `keys` below). */
export function docOf(dataset: string, key: string): DocId {
  const regionIn = (prefix: string): ChaosRegion => chaosRegions.find((region) => key.startsWith(`${prefix}${region}-`))!;
  if (dataset === 'visits') return { dataset, key, family: 'counter', origin: null };
  if (dataset === 'carts') return { dataset, key, family: 'cart', origin: null };
  if (dataset === 'audits') return { dataset, key, family: 'local', origin: regionIn('mk-loc-') };
  if (dataset === 'orders') return { dataset, key, family: 'order', origin: null };
  if (key.startsWith('mk-pii-')) return { dataset, key, family: 'pii', origin: regionIn('mk-pii-') };
  if (key.startsWith('mk-q-')) return { dataset, key, family: 'quar', origin: regionIn('mk-q-') };
  if (key.startsWith('d-')) return { dataset, key, family: 'del', origin: null };
  if (key.startsWith('shared-')) return { dataset, key, family: 'shared', origin: null };
  if (key === 'hot') return { dataset, key, family: 'hot', origin: null };
  return { dataset, key, family: 'own', origin: null };
}

/** Keys and value markers of each family. `c` is the client, `n` a per-client counter. */
export const keys = {
  own: (c: number, slot: number) => `g-c${c}-${slot}`,
  shared: (slot: number) => `shared-${slot}`,
  hot: () => 'hot',
  counter: (slot: number) => `v-${slot}`,
  cart: (slot: number) => `cart-${slot}`,
  del: (c: number, n: number) => `d-c${c}-${n}`,
  local: (region: string, c: number, n: number) => `mk-loc-${region}-c${c}-${n}`,
  order: (c: number, n: number) => `mk-ord-c${c}-${n}`,
  pii: (region: string, c: number, n: number) => `mk-pii-${region}-c${c}-${n}`,
  quar: (region: string, c: number, n: number) => `mk-q-${region}-c${c}-${n}`,
};

/** The marker in a value: what the taps look for. Quarantine markers end with '.' so their id can be read back. */
export const markers = {
  local: (region: string, c: number, n: number) => `mv-loc-${region}-c${c}-${n}`,
  order: (c: number, n: number) => `mv-ord-c${c}-${n}`,
  pii: (region: string, c: number, n: number) => `mv-pii-${region}-c${c}-${n}`,
  quar: (region: string, c: number, n: number) => `mv-q-${region}-c${c}-${n}.`,
};

/** The quarantine marker prefix; the id runs to the next '.'. */
export const quarantineMarkerPrefix = 'mv-q-';

/**
 * Strings that must never reach `region` (on the wire or on disk), whatever happens: local documents of other
 * regions, orders outside their regions, pii documents of another jurisdiction. (Quarantined documents are
 * checked by id and time, see the checker.)
 */
export function forbiddenMarkers(region: ChaosRegion): string[] {
  const out: string[] = [];
  for (const other of chaosRegions) {
    if (other === region) continue;
    out.push(`mk-loc-${other}-`, `mv-loc-${other}-`);
    if (jurisdictionOf(other) !== jurisdictionOf(region)) out.push(`mk-pii-${other}-`, `mv-pii-${other}-`);
  }
  if (!orderRegions.includes(region)) out.push('mk-ord-', 'mv-ord-');
  return out;
}

/**
 * The regions that may hold a document at the end of a run. A quarantined document is held at its origin until
 * a release is acknowledged; `release` is 'ok', 'unknown' (the release's outcome is not known) or 'none'.
 * Returns null when it cannot be known (an unknown release).
 */
export function allowedRegions(doc: DocId, release: 'ok' | 'unknown' | 'none' = 'none'): readonly ChaosRegion[] | null {
  switch (doc.family) {
    case 'local':
      return [doc.origin!];
    case 'order':
      return orderRegions;
    case 'pii':
      return chaosRegions.filter((region) => jurisdictionOf(region) === jurisdictionOf(doc.origin!));
    case 'quar':
      return release === 'ok' ? chaosRegions : release === 'none' ? [doc.origin!] : null;
    default:
      return chaosRegions;
  }
}
