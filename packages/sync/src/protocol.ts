/**
 * The replication wire protocol: binary WebSocket messages, each one canonical MessagePack frame. Every frame
 * from a peer is untrusted: it is decoded within `frameBytesMax` and checked field by field; a malformed frame
 * closes the link with a reason, it never reaches the store.
 *
 * Handshake (the secret never travels; both sides prove they hold it):
 *   acceptor → dialer   challenge { v, nonce }
 *   dialer   → acceptor hello     { v, cluster, node, region, policy, nonce, proof = HMAC(secret, hello | …) }
 *   acceptor → dialer   welcome   { node, region, policy, proof = HMAC(secret, welcome | …) }   or refuse { code, reason }
 * Then both directions stream independently:
 *   batch { id, last, entries }  delta-log entries after the receiver's cursor, up to the sender's seq `last`
 *   state { id, last, entries }  catch-up: whole document states, for a peer behind the retained log
 *   ack   { id, last, refused? } sent only after the batch is durable at the receiver; `refused`: the seqs of
 *                                entries the receiver's policy refused (not applied; audited there)
 *   policy { version, text, signature? }  a newer policy version and the operator's signature of it, sent to a
 *                                peer whose handshake announced an older one (a peer that checks signatures
 *                                installs nothing unsigned)
 *   ping  { ms } / pong { ms }   round-trip time for the cadence controller
 *
 * An entry is [seq, dataset, key, origin, originSeq, hlc ms, hlc c, delta], then optionally the sender's head
 * of the document (its facts as they stood when sent; null when absent), then [kind, to] for a state sent to
 * regions a change opened or a purge notice (the facts, no value) for regions it shut.
 */
import { type LogEntry } from '@tessera/store';
import {
  KiB,
  MiB,
  TesseraError,
  assert,
  docBytesMax,
  policyBytesMax,
  policySignatureBytesMax,
  checkDatasetName,
  checkKey,
  checkNodeId,
  checkRegion,
  decodeBounded,
  encodeCanonical,
  expectArray,
  expectBytes,
  expectInt,
  expectString,
  hlcRemoteMsMax,
  isHlc,
} from '@tessera/core';

/**
 * Protocol version; a peer speaking another one is refused with the reason. Version 2: heads on entries,
 * refusals in acknowledgements (no reject frame), format-2 documents.
 */
export const protocolVersion = 2;
/** Largest frame accepted from a peer: one whole document state (catch-up) with room for its header. */
export const frameBytesMax = docBytesMax + 1 * MiB;
/** A batch's deltas stay under this many bytes (so a batch always fits in a frame). */
export const batchBytesMax = 1 * MiB;
/** Entries in one batch. */
export const batchEntriesMax = 2_000;
/** Handshake nonces. */
export const nonceBytes = 32;
/** Reasons and codes in refusals. */
export const reasonLengthMax = 512;
/** Regions named by one state or purge entry. */
export const entryRegionsMax = 64;

assert(batchBytesMax + 64 * KiB * 4 <= frameBytesMax, 'a full batch with its per-entry headers fits in a frame');

/** A delta-log entry on the wire: the store's log entry as it is. */
export type WireEntry = LogEntry;

/** The policy a node enforces, as announced in the handshake. */
export interface PolicyStamp {
  readonly version: number;
  readonly hash: string;
}

/**
 * What a node tells its peers about itself, on pings and acknowledgements: per origin the highest sequence
 * number it holds, and the peers it has no open link to. Forwarding decides with it.
 */
export interface PeerState {
  readonly have: Readonly<Record<string, number>>;
  readonly down: readonly string[];
}

/** Origins in one peer-state report. */
export const peerStateNodesMax = 4_096;
/** Containers open at once in a frame: a batch's entry's region list is the deepest (map, entries, entry, to). */
export const frameDepthMax = 8;
/**
 * MessagePack values in one frame: a full batch of state entries each naming every region, with its traces,
 * or a peer-state report, fits with room to spare. Checked before decoding, so that a frame of one-byte
 * containers cannot make the decoder allocate gigabytes (a peer is untrusted until its hello is checked).
 */
export const frameItemsMax = batchEntriesMax * (12 + entryRegionsMax) + 4 * peerStateNodesMax;

/** Every frame of the protocol. */
export type Frame =
  | { readonly t: 'challenge'; readonly v: number; readonly nonce: Uint8Array }
  /** `at`: the dialer's wall clock when it answered the challenge (the acceptor bounds the clock offset with it). */
  | {
      readonly t: 'hello';
      readonly v: number;
      readonly cluster: string;
      readonly node: string;
      readonly region: string;
      readonly policy: PolicyStamp;
      readonly nonce: Uint8Array;
      readonly proof: Uint8Array;
      readonly at?: number;
    }
  | { readonly t: 'welcome'; readonly node: string; readonly region: string; readonly policy: PolicyStamp; readonly proof: Uint8Array }
  | { readonly t: 'refuse'; readonly code: string; readonly reason: string }
  /** `traces`: W3C trace ids of the writes in the batch that had one, as [seq, trace id] (so a write can be followed to every region). */
  | {
      readonly t: 'batch';
      readonly id: number;
      readonly last: number;
      readonly entries: readonly WireEntry[];
      readonly lane?: string;
      readonly traces?: ReadonlyArray<readonly [number, string]>;
    }
  /** A catch-up batch: whole document states; `last` is the sender's cursor for the peer once acknowledged. */
  | { readonly t: 'state'; readonly id: number; readonly last: number; readonly entries: readonly WireEntry[]; readonly lane?: string }
  | { readonly t: 'ack'; readonly id: number; readonly last: number; readonly peer?: PeerState; readonly lane?: string; readonly refused?: readonly number[] }
  | { readonly t: 'policy'; readonly version: number; readonly text: string; readonly signature?: string }
  | { readonly t: 'ping'; readonly ms: number; readonly peer?: PeerState }
  /** `at`: the answering node's wall clock when it answered (the pinging node estimates clock skew from it). */
  | { readonly t: 'pong'; readonly ms: number; readonly at?: number };

/** Encodes a frame. */
export function encodeFrame(frame: Frame): Uint8Array {
  if (frame.t === 'batch' || frame.t === 'state') {
    // Entries go as arrays: smaller than objects and quicker to check.
    return encodeCanonical({
      t: frame.t,
      id: frame.id,
      last: frame.last,
      ...(frame.lane === undefined || frame.lane === 'main' ? {} : { lane: frame.lane }),
      ...(frame.t === 'batch' && frame.traces !== undefined && frame.traces.length > 0 ? { traces: frame.traces.map(([seq, trace]) => [seq, trace]) } : {}),
      entries: frame.entries.map((e) => {
        const base = [e.seq, e.dataset, e.key, e.origin, e.originSeq, e.hlc.ms, e.hlc.c, e.delta];
        if (e.kind !== undefined) return [...base, e.head ?? null, e.kind, e.to ?? []];
        return e.head === undefined ? base : [...base, e.head];
      }),
    });
  }
  if (frame.t === 'ack' && frame.refused !== undefined && frame.refused.length === 0) {
    const { refused: _none, ...rest } = frame;
    return encodeCanonical(rest);
  }
  return encodeCanonical(frame);
}

function fail(message: string): never {
  throw new TesseraError('ERR_FRAME_INVALID', message);
}

function field(record: Record<string, unknown>, name: string): unknown {
  if (!Object.hasOwn(record, name)) fail(`frame "${String(record.t)}": missing field "${name}"`);
  return record[name];
}

function boundedString(value: unknown, what: string, lengthMax: number): string {
  const text = expectString(value, what);
  if (text.length > lengthMax) fail(`${what}: ${text.length} characters exceed the limit of ${lengthMax}`);
  return text;
}

function policyStamp(value: unknown): PolicyStamp {
  if (typeof value !== 'object' || value === null) fail('policy: expected { version, hash }');
  const record = value as Record<string, unknown>;
  return { version: expectInt(record.version, 'policy version'), hash: boundedString(record.hash, 'policy hash', 128) };
}

function nonce(value: unknown, what: string): Uint8Array {
  const bytes = expectBytes(value, what);
  if (bytes.length !== nonceBytes) fail(`${what}: expected ${nonceBytes} bytes, got ${bytes.length}`);
  return bytes;
}

function checked<T>(what: string, check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof TesseraError && error.code === 'ERR_FRAME_INVALID') throw error;
    return fail(`${what}: ${(error as Error).message}`);
  }
}

function wireEntry(value: unknown, index: number): WireEntry {
  const what = `batch entry ${index}`;
  return checked(what, () => {
    const items = expectArray(value, what, 8, 11);
    if (items.length === 10) fail(`${what}: 10 items (a state or purge entry has a head slot, then kind and regions)`);
    const [seq, dataset, key, origin, originSeq, ms, c, delta, headItem, kind, to] = items;
    checkDatasetName(dataset);
    checkKey(key);
    checkNodeId(origin);
    const hlc = { ms, c };
    if (!isHlc(hlc)) fail(`${what}: hlc is not well formed`);
    // A timestamp past year 9999 would push the receiver's clock where it can no longer issue valid ones.
    if (hlc.ms > hlcRemoteMsMax) fail(`${what}: hlc ${hlc.ms} ms is past the limit of ${hlcRemoteMsMax} ms (year 9999)`);
    const head = headItem === undefined || headItem === null ? undefined : expectBytes(headItem, `${what} head`);
    if (headItem === null && kind === undefined) fail(`${what}: an empty head slot without a kind (one form per entry)`);
    const entry = {
      seq: expectInt(seq, `${what} seq`, 1),
      dataset,
      key,
      origin,
      originSeq: expectInt(originSeq, `${what} origin seq`),
      hlc,
      delta: expectBytes(delta, `${what} delta`),
      ...(head === undefined ? {} : { head }),
    };
    if (kind === undefined) return entry;
    if (kind !== 'state' && kind !== 'purge') fail(`${what}: kind must be "state" or "purge"`);
    const regions = expectArray(to, `${what} to`, 1, entryRegionsMax).map((region) => {
      checkRegion(region);
      return region;
    });
    return { ...entry, kind, to: regions };
  });
}

const lanePattern = /^[a-z0-9][a-z0-9-]{0,31}$/;

function laneOf(record: Record<string, unknown>): { lane?: string } {
  if (!Object.hasOwn(record, 'lane') || record.lane === undefined) return {};
  const lane = record.lane;
  if (typeof lane !== 'string' || !lanePattern.test(lane)) fail('lane: expected 1 to 32 characters [a-z0-9-]');
  // The main lane is the absence of a lane: one form per frame, as the encoder writes it.
  return lane === 'main' ? {} : { lane };
}

function peerStateOf(record: Record<string, unknown>): { peer?: PeerState } {
  if (!Object.hasOwn(record, 'peer') || record.peer === undefined) return {};
  const value = record.peer;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('peer state: expected a map');
  const { have, down } = value as Record<string, unknown>;
  if (typeof have !== 'object' || have === null || Array.isArray(have)) fail('peer state: have must be a map');
  const origins = Object.keys(have);
  if (origins.length > peerStateNodesMax) fail(`peer state: ${origins.length} origins exceed the limit of ${peerStateNodesMax}`);
  const haveOut: Record<string, number> = {};
  for (const origin of origins) {
    checkNodeId(origin);
    haveOut[origin] = expectInt((have as Record<string, unknown>)[origin], `peer state have[${origin}]`);
  }
  const downOut = expectArray(down, 'peer state down', 0, peerStateNodesMax).map((node) => {
    checkNodeId(node);
    return node;
  });
  return { peer: { have: haveOut, down: downOut } };
}

/** Trace ids are 32 lowercase hex characters (W3C trace context). */
const traceIdPattern = /^[0-9a-f]{32}$/;

function tracesOf(record: Record<string, unknown>): { traces?: Array<readonly [number, string]> } {
  if (record.traces === undefined) return {};
  const traces = expectArray(record.traces, 'traces', 0, batchEntriesMax).map((pair, i) => {
    const [seq, trace] = expectArray(pair, `traces[${i}]`, 2, 2);
    if (typeof trace !== 'string' || !traceIdPattern.test(trace)) fail(`traces[${i}]: a trace id is 32 lowercase hex characters`);
    return [expectInt(seq, `traces[${i}] seq`, 1), trace] as const;
  });
  // No traces is the absence of the field: one form per frame, as the encoder writes it.
  return traces.length === 0 ? {} : { traces };
}

/** Decodes and checks an untrusted frame; throws `ERR_FRAME_INVALID`. */
export function decodeFrame(bytes: Uint8Array): Frame {
  const value = checked('frame', () => decodeBounded(bytes, 'frame', frameBytesMax, { depthMax: frameDepthMax, itemsMax: frameItemsMax }));
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('frame: expected a map');
  const record = value as Record<string, unknown>;
  const t = field(record, 't');
  switch (t) {
    case 'challenge':
      return {
        t,
        v: checked('challenge', () => expectInt(field(record, 'v'), 'version')),
        nonce: checked('challenge', () => nonce(field(record, 'nonce'), 'nonce')),
      };
    case 'hello':
      return checked('hello', () => {
        const cluster = boundedString(field(record, 'cluster'), 'cluster', 64);
        const node = field(record, 'node');
        checkNodeId(node);
        const region = field(record, 'region');
        checkRegion(region);
        return {
          t,
          v: expectInt(field(record, 'v'), 'version'),
          cluster,
          node,
          region,
          policy: policyStamp(field(record, 'policy')),
          nonce: nonce(field(record, 'nonce'), 'nonce'),
          proof: expectBytes(field(record, 'proof'), 'proof'),
          ...(record.at === undefined ? {} : { at: expectInt(record.at, 'at') }),
        };
      });
    case 'welcome':
      return checked('welcome', () => {
        const node = field(record, 'node');
        checkNodeId(node);
        const region = field(record, 'region');
        checkRegion(region);
        return { t, node, region, policy: policyStamp(field(record, 'policy')), proof: expectBytes(field(record, 'proof'), 'proof') };
      });
    case 'refuse':
      return checked('refuse', () => ({
        t,
        code: boundedString(field(record, 'code'), 'code', 64),
        reason: boundedString(field(record, 'reason'), 'reason', reasonLengthMax),
      }));
    case 'batch': {
      const id = checked('batch', () => expectInt(field(record, 'id'), 'id'));
      const last = checked('batch', () => expectInt(field(record, 'last'), 'last'));
      const raw = checked('batch', () => expectArray(field(record, 'entries'), 'entries', 0, batchEntriesMax));
      const entries = raw.map(wireEntry);
      const lane = laneOf(record);
      for (let i = 1; i < entries.length; i++) {
        if (entries[i]!.seq <= entries[i - 1]!.seq) fail(`batch: entry ${i} has seq ${entries[i]!.seq}, not above the previous ${entries[i - 1]!.seq}`);
      }
      if (entries.length > 0 && entries[entries.length - 1]!.seq > last)
        fail(`batch: entry seq ${entries[entries.length - 1]!.seq} is above the batch's last ${last}`);
      return { t, id, last, entries, ...lane, ...checked('batch', () => tracesOf(record)) };
    }
    case 'state': {
      const id = checked('state', () => expectInt(field(record, 'id'), 'id'));
      const last = checked('state', () => expectInt(field(record, 'last'), 'last'));
      const raw = checked('state', () => expectArray(field(record, 'entries'), 'entries', 0, batchEntriesMax));
      return { t, id, last, entries: raw.map(wireEntry), ...laneOf(record) };
    }
    case 'ack':
      return checked('ack', () => {
        const refused =
          record.refused === undefined ? [] : expectArray(record.refused, 'refused', 1, batchEntriesMax).map((seq) => expectInt(seq, 'refused seq', 1));
        return {
          t,
          id: expectInt(field(record, 'id'), 'id'),
          last: expectInt(field(record, 'last'), 'last'),
          ...peerStateOf(record),
          ...laneOf(record),
          ...(refused.length === 0 ? {} : { refused }),
        };
      });
    case 'policy':
      return checked('policy', () => {
        const text = expectString(field(record, 'text'), 'text');
        if (text.length > policyBytesMax) fail(`policy: ${text.length} characters exceed the limit of ${policyBytesMax}`);
        const signature = record.signature === undefined ? undefined : boundedString(record.signature, 'policy signature', policySignatureBytesMax);
        return { t, version: expectInt(field(record, 'version'), 'version', 1), text, ...(signature === undefined ? {} : { signature }) };
      });
    case 'ping':
      return checked('ping', () => ({ t, ms: expectInt(field(record, 'ms'), 'ms'), ...peerStateOf(record) }));
    case 'pong':
      return checked('pong', () => ({
        t,
        ms: expectInt(field(record, 'ms'), 'ms'),
        ...(record.at === undefined ? {} : { at: expectInt(record.at, 'at') }),
      }));
    default:
      return fail(`frame: unknown type ${JSON.stringify(t)?.slice(0, 40)}`);
  }
}
