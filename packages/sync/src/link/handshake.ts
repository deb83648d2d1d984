/**
 * The handshake, as pure functions over frames: the acceptor challenges, the dialer says hello with a proof
 * over both nonces and both identities, the acceptor checks it and welcomes with its own proof (or refuses
 * with a code and a reason), and the dialer checks that. Nothing here reads a socket, a clock or randomness:
 * nonces come in as arguments.
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

/** The dialer's answer to a challenge, or a refusal reason when the challenge is not one it can answer. */
export function helloFor(self: LocalIdentity, challenge: Frame, dialerNonce: Uint8Array, policy: PolicyStamp): { frame: Frame } | { reason: string } {
  if (challenge.t !== 'challenge') return { reason: `expected a challenge, got ${challenge.t}` };
  if (challenge.v !== protocolVersion) return { reason: `peer speaks protocol version ${challenge.v}, this node ${protocolVersion}` };
  return {
    frame: {
      t: 'hello', v: protocolVersion, cluster: self.cluster, node: self.node, region: self.region, policy,
      nonce: dialerNonce, proof: helloProof(self.secret, self.cluster, self.node, self.region, challenge.nonce, dialerNonce),
    },
  };
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

/** Judges a hello against the config and the secret; `policy` is this node's stamp for the welcome. */
export function judgeHello(self: LocalIdentity, hello: Frame, acceptorNonce: Uint8Array, peerOf: (node: string) => AcceptablePeer | undefined, policy: PolicyStamp): HelloVerdict {
  if (hello.t !== 'hello') return { ok: false, code: 'bad-frame', reason: `expected hello, got ${hello.t}` };
  if (hello.v !== protocolVersion) return { ok: false, code: 'protocol-version', reason: `this node speaks protocol version ${protocolVersion}, the peer ${hello.v}` };
  if (hello.cluster !== self.cluster) return { ok: false, code: 'cluster-mismatch', reason: 'not a member of this cluster' };
  const peer = peerOf(hello.node);
  if (peer === undefined || peer.region !== hello.region || peer.role !== 'accept') {
    return { ok: false, code: 'unknown-node', reason: `node ${hello.node} is not a peer this node accepts` };
  }
  const expected = helloProof(self.secret, self.cluster, hello.node, hello.region, acceptorNonce, hello.nonce);
  if (!proofMatches(expected, hello.proof)) return { ok: false, code: 'bad-proof', reason: 'authentication failed' };
  return {
    ok: true, node: hello.node, region: hello.region, policy: hello.policy,
    welcome: { t: 'welcome', node: self.node, region: self.region, policy, proof: welcomeProof(self.secret, self.cluster, self.node, self.region, acceptorNonce, hello.nonce) },
  };
}

/** The dialer's check of the welcome: the peer it dialed, proving the secret over this session. */
export function welcomeMatches(self: LocalIdentity, welcome: Frame, peer: { readonly node: string; readonly region: string }, acceptorNonce: Uint8Array, dialerNonce: Uint8Array): boolean {
  if (welcome.t !== 'welcome' || welcome.node !== peer.node || welcome.region !== peer.region) return false;
  return proofMatches(welcomeProof(self.secret, self.cluster, welcome.node, welcome.region, acceptorNonce, dialerNonce), welcome.proof);
}
