/**
 * The handshake, as pure functions over frames: the acceptor challenges, the dialer says hello with a proof
 * over both nonces and both identities, the acceptor checks it and welcomes with its own proof (or refuses
 * with a code and a reason), and the dialer checks that. Nothing here reads a socket, a clock or randomness:
 * nonces and times come in as arguments. The acceptor also judges what the transport knows: the identity in the
 * peer's TLS certificate, which the hello must claim, and when the challenge left and the hello came, which
 * bound the peer's clock offset.
 */
import { type Frame, type PolicyStamp, protocolVersion } from '../protocol.js';
import { helloProof, proofMatches, welcomeProof } from '../auth.js';

/** Who this node is, as the handshake tells peers. */
export interface LocalIdentity {
  readonly cluster: string;
  readonly node: string;
  readonly region: string;
  readonly secret: Uint8Array;
}

/** The acceptor's opening frame. */
export function challengeFrame(acceptorNonce: Uint8Array): Frame {
  return { t: 'challenge', v: protocolVersion, nonce: acceptorNonce };
}

/**
 * The dialer's answer to a challenge, or a refusal reason when the challenge is not one it can answer. `wallMs`
 * (the dialer's wall clock) lets the acceptor bound the clock offset between the two (`judgeHello`).
 */
export function helloFor(
  self: LocalIdentity,
  challenge: Frame,
  dialerNonce: Uint8Array,
  policy: PolicyStamp,
  wallMs?: number,
): { frame: Frame } | { reason: string } {
  if (challenge.t !== 'challenge') return { reason: `expected a challenge, got ${challenge.t}` };
  if (challenge.v !== protocolVersion) return { reason: `peer speaks protocol version ${challenge.v}, this node ${protocolVersion}` };
  return {
    frame: {
      t: 'hello',
      v: protocolVersion,
      cluster: self.cluster,
      node: self.node,
      region: self.region,
      policy,
      nonce: dialerNonce,
      proof: helloProof(self.secret, self.cluster, self.node, self.region, challenge.nonce, dialerNonce),
      ...(wallMs === undefined ? {} : { at: Math.floor(wallMs) }),
    },
  };
}

/** Default bound on the wall-clock offset between two peers (CockroachDB's `--max-offset` default). */
export const clockOffsetMsMaxDefault = 500;

/** Who a connection is, as its transport authenticated it (the identity in the peer's verified TLS certificate). */
export interface CertifiedPeer {
  readonly node: string;
  readonly region: string;
}

/** The acceptor's view of the time a hello took: its wall clock when it sent the challenge and when the hello came. */
export interface HelloTiming {
  readonly challengedAtMs: number;
  readonly receivedAtMs: number;
  /** Refuse a peer whose clock is certainly further than this from ours. */
  readonly offsetMsMax: number;
}

/** What the acceptor knows of a connection besides its frames. */
export interface HelloContext {
  /** The certificate's identity, or null when the transport authenticates no one (in-process tests). */
  readonly certified?: CertifiedPeer | null;
  /** Null or absent: no clock check (the simulation, whose clocks are simulated). */
  readonly timing?: HelloTiming | null;
}

/**
 * The clock offset a hello proves, or null when within the bound. The dialer read its clock after the challenge
 * left and before its hello arrived, so its offset from this node lies between `at - receivedAtMs` and
 * `at - challengedAtMs`; a peer is refused only when that whole interval lies beyond the bound (latency never
 * makes a peer look skewed). A hello without `at` is not judged: a dishonest peer can claim any clock anyway,
 * the bound is for honest nodes whose clocks drifted (and the HLC bounds what a remote timestamp can do).
 */
export function helloClockOffsetMs(at: number | undefined, timing: HelloTiming): number | null {
  if (at === undefined) return null;
  if (at - timing.receivedAtMs > timing.offsetMsMax) return at - timing.receivedAtMs;
  if (timing.challengedAtMs - at > timing.offsetMsMax) return at - timing.challengedAtMs;
  return null;
}

/** A peer this node accepts connections from, as the config names it. */
export interface AcceptablePeer {
  readonly region: string;
  readonly role: 'dial' | 'accept';
}

/** The acceptor's judgment of a hello: the peer's identity and welcome frame, or a refusal. */
export type HelloVerdict =
  | { readonly ok: true; readonly node: string; readonly region: string; readonly policy: PolicyStamp; readonly welcome: Frame }
  | { readonly ok: false; readonly code: string; readonly reason: string };

/**
 * Judges a hello against the config, the secret and what the transport knows (`context`); `policy` is this
 * node's stamp for the welcome. With a certified identity, the hello must claim exactly that node and region
 * (`ERR_PEER_IDENTITY`): a node speaks only as its certificate names it, so only a connection of the same
 * identity can reach the link (and replace its connection). With timing, a peer whose clock is off by more than
 * the bound is refused (`ERR_PEER_CLOCK_OFFSET`).
 */
export function judgeHello(
  self: LocalIdentity,
  hello: Frame,
  acceptorNonce: Uint8Array,
  peerOf: (node: string) => AcceptablePeer | undefined,
  policy: PolicyStamp,
  context: HelloContext = {},
): HelloVerdict {
  if (hello.t !== 'hello') return { ok: false, code: 'bad-frame', reason: `expected hello, got ${hello.t}` };
  if (hello.v !== protocolVersion)
    return { ok: false, code: 'protocol-version', reason: `this node speaks protocol version ${protocolVersion}, the peer ${hello.v}` };
  if (hello.cluster !== self.cluster) return { ok: false, code: 'cluster-mismatch', reason: 'not a member of this cluster' };
  const certified = context.certified ?? null;
  if (certified !== null && (certified.node !== hello.node || certified.region !== hello.region)) {
    return {
      ok: false,
      code: 'ERR_PEER_IDENTITY',
      reason: `the hello claims node ${hello.node} in region ${hello.region}, but the peer's certificate is for node ${certified.node} in region ${certified.region}`,
    };
  }
  const peer = peerOf(hello.node);
  if (peer === undefined || peer.region !== hello.region || peer.role !== 'accept') {
    return { ok: false, code: 'unknown-node', reason: `node ${hello.node} is not a peer this node accepts` };
  }
  const expected = helloProof(self.secret, self.cluster, hello.node, hello.region, acceptorNonce, hello.nonce);
  if (!proofMatches(expected, hello.proof)) return { ok: false, code: 'bad-proof', reason: 'authentication failed' };
  const timing = context.timing ?? null;
  const offsetMs = timing === null ? null : helloClockOffsetMs(hello.at, timing);
  if (offsetMs !== null) {
    return {
      ok: false,
      code: 'ERR_PEER_CLOCK_OFFSET',
      reason: `node ${hello.node}'s clock is at least ${Math.abs(offsetMs)} ms ${offsetMs > 0 ? 'ahead of' : 'behind'} node ${self.node}'s, over the limit of ${timing!.offsetMsMax} ms (clockOffsetMsMax); fix the clocks (NTP)`,
    };
  }
  return {
    ok: true,
    node: hello.node,
    region: hello.region,
    policy: hello.policy,
    welcome: {
      t: 'welcome',
      node: self.node,
      region: self.region,
      policy,
      proof: welcomeProof(self.secret, self.cluster, self.node, self.region, acceptorNonce, hello.nonce),
    },
  };
}

/** The dialer's check of the welcome: the peer it dialed, proving the secret over this session. */
export function welcomeMatches(
  self: LocalIdentity,
  welcome: Frame,
  peer: { readonly node: string; readonly region: string },
  acceptorNonce: Uint8Array,
  dialerNonce: Uint8Array,
): boolean {
  if (welcome.t !== 'welcome' || welcome.node !== peer.node || welcome.region !== peer.region) return false;
  return proofMatches(welcomeProof(self.secret, self.cluster, welcome.node, welcome.region, acceptorNonce, dialerNonce), welcome.proof);
}
