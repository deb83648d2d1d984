/**
 * What a chaos run writes. Every document belongs to a family; its key names the family and, for documents one
 * client owns, that client. Every value a write puts carries a marker, `wv-c<client>-<n>.`, unique to that write
 * (`n` counts the client's operations), so that a byte on the wire or on disk can be traced to its write, and so
 * to its document — whose placement the policy in force and the document's facts decide (policy.ts, facts.ts).
 */

/** The regions of a chaos cluster, in node order. */
export const chaosRegions = ['eu-west', 'eu-central', 'us-east'] as const;
export type ChaosRegion = (typeof chaosRegions)[number];

export function jurisdictionOf(region: string): string {
  return region.split('-')[0]!;
}

/** The datasets, their CRDT type and the settings every policy version repeats (lanes are fixed at start). */
export const chaosDatasets = {
  catalog: { type: 'map', settings: 'priority: high' },
  visits: { type: 'counter', settings: '' },
  carts: { type: 'set', settings: '' },
  audits: { type: 'map', settings: '' },
  orders: { type: 'map', settings: '' },
  profiles: { type: 'map', settings: '' },
} as const;
export type ChaosDataset = keyof typeof chaosDatasets;
export const chaosDatasetNames = Object.keys(chaosDatasets) as ChaosDataset[];

/**
 * Families of documents. One writer (a client, at its own region's node): `own` (whole values, colour tags),
 * `del` (written, then deleted), `local`, `order`, `pii` (tagged pii at creation), `quar` (tagged quarantine
 * at creation, later maybe released), `tagged` (placement tags added and removed at will), `retype` (deleted
 * and created again with another type). Several writers: `shared` (a field per client), `hot` (one field
 * every client writes), `counter`, `cart`, `race` (every client creates, tags and releases the same keys, so
 * that creations race quarantine tags and releases across regions).
 */
export type Family = 'own' | 'del' | 'local' | 'order' | 'pii' | 'quar' | 'tagged' | 'retype' | 'shared' | 'hot' | 'counter' | 'cart' | 'race';

/** Families whose documents one client writes, at its own node. */
export const singleWriterFamilies: ReadonlySet<Family> = new Set(['own', 'del', 'local', 'order', 'pii', 'quar', 'tagged', 'retype']);

/** Where a document lives: its dataset, key and family; `owner` is the writing client of a single-writer family. */
export interface DocId {
  readonly dataset: string;
  readonly key: string;
  readonly family: Family;
  readonly owner: number | null;
}

export const docKeyOf = (dataset: string, key: string): string => `${dataset}/${key}`;

/** The datasets `tagged` documents live in, by slot: placement tags meet every kind of placement. */
export const taggedDatasets: readonly ChaosDataset[] = ['catalog', 'orders', 'profiles', 'audits'];

/** Keys of each family. `c` is the client, `n` the client's operation count, `slot` a small index. */
export const keys = {
  own: (c: number, slot: number) => `g-c${c}-${slot}`,
  del: (c: number, n: number) => `d-c${c}-${n}`,
  local: (c: number, n: number) => `l-c${c}-${n}`,
  order: (c: number, n: number) => `o-c${c}-${n}`,
  pii: (c: number, n: number) => `pii-c${c}-${n}`,
  quar: (c: number, n: number) => `q-c${c}-${n}`,
  tagged: (c: number, slot: number) => `t-c${c}-${slot}`,
  retype: (c: number, n: number) => `rt-c${c}-${n}`,
  shared: (slot: number) => `shared-${slot}`,
  hot: () => 'hot',
  counter: (slot: number) => `v-${slot}`,
  cart: (slot: number) => `cart-${slot}`,
  race: (epoch: number, slot: number) => `race-${epoch}-${slot}`,
};

const familyPatterns: ReadonlyArray<[Family, RegExp]> = [
  ['own', /^g-c(\d+)-\d+$/],
  ['del', /^d-c(\d+)-\d+$/],
  ['local', /^l-c(\d+)-\d+$/],
  ['order', /^o-c(\d+)-\d+$/],
  ['pii', /^pii-c(\d+)-\d+$/],
  ['quar', /^q-c(\d+)-\d+$/],
  ['tagged', /^t-c(\d+)-\d+$/],
  ['retype', /^rt-c(\d+)-\d+$/],
  ['shared', /^shared-\d+$/],
  ['hot', /^hot$/],
  ['counter', /^v-\d+$/],
  ['cart', /^cart-\d+$/],
  ['race', /^race-\d+-\d+$/],
];

/** The family of a key the workload writes; null for a key it never writes (a node listing one is a finding). */
export function docOf(dataset: string, key: string): DocId | null {
  for (const [family, pattern] of familyPatterns) {
    const match = pattern.exec(key);
    if (match === null) continue;
    return { dataset, key, family, owner: match[1] === undefined ? null : Number(match[1]) };
  }
  return null;
}

/** The marker of client `c`'s operation `n`: every value that write puts carries it. */
export const markerOf = (c: number, n: number): string => `wv-c${c}-${n}.`;
/** What the taps and the disk scan look for; a marker runs to the next '.'. */
export const markerPrefix = 'wv-c';
/** A marker's longest form (client and count of up to 7 digits each), to bound the scan. */
export const markerBytesMax = markerPrefix.length + 7 + 1 + 7 + 1;
const markerPattern = /^wv-c(\d{1,7})-(\d{1,7})\.$/;

/** The client and operation count of a marker, or null when the bytes are not one. */
export function parseMarker(marker: string): { client: number; n: number } | null {
  const match = markerPattern.exec(marker);
  return match === null ? null : { client: Number(match[1]), n: Number(match[2]) };
}
