/**
 * Sovereignty-aware routing as pure functions: which of the client's nodes a dataset's requests may go to
 * (nodes whose region may hold the dataset under the enforced policy), nearest first. The client carries the
 * plan out: it sends to the first healthy node and fails over down the list.
 */
import { type PlacementAnswer } from '../http/routes-placement.js';

/** A node the client may call. */
export interface ClientNode {
  /** The node's API base URL (`https://eu-west-1.example.com:7101`). */
  readonly url: string;
  /** The node's region (as the cluster config and the policy name it). */
  readonly region: string;
}

/** Where the client is: a region of the policy (its location is used) or a latitude and longitude in degrees. */
export type ClientLocation = string | readonly [number, number];

/** The plan of one dataset: the nodes it may use in order, and the regions that may hold it. */
export interface RoutePlan {
  readonly nodes: readonly ClientNode[];
  /** The regions that may hold the dataset (null: no policy is enforced, every region may). */
  readonly regions: readonly string[] | null;
}

const earthRadiusKm = 6371;

/** Great-circle distance between two points in degrees, in kilometres. */
export function distanceKm(a: readonly [number, number], b: readonly [number, number]): number {
  const rad = Math.PI / 180;
  const dLat = (b[0] - a[0]) * rad;
  const dLon = (b[1] - a[1]) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a[0] * rad) * Math.cos(b[0] * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * earthRadiusKm * Math.asin(Math.min(1, Math.sqrt(h)));
}

/**
 * The nodes a dataset's requests may go to, nearest to `near` first (nodes in the client's own region before
 * all others; regions without a location after those with one; otherwise the order the nodes were given).
 */
export function planRoute(nodes: readonly ClientNode[], placement: PlacementAnswer | null, near: ClientLocation | undefined): RoutePlan {
  const regions = placement === null || placement.policy === null ? null : placement.regions.filter((r) => r.mayHold).map((r) => r.name);
  const allowed = regions === null ? [...nodes] : nodes.filter((node) => regions.includes(node.region));
  const locations = new Map((placement?.regions ?? []).map((r) => [r.name, r.location] as const));
  const here = typeof near === 'string' ? (locations.get(near) ?? null) : (near ?? null);
  const rank = (node: ClientNode): number => {
    if (typeof near === 'string' && node.region === near) return -1;
    const there = locations.get(node.region) ?? null;
    if (here === null) return 0;
    return there === null ? Number.MAX_SAFE_INTEGER : distanceKm(here, there);
  };
  const ranked = allowed.map((node, index) => ({ node, index, rank: rank(node) }));
  ranked.sort((a, b) => a.rank - b.rank || a.index - b.index);
  return { nodes: ranked.map((r) => r.node), regions };
}
