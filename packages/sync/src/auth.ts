/**
 * Challenge–response authentication with the cluster secret (HMAC-SHA256). Each side proves it holds the
 * secret over both nonces and both identities, so a proof cannot be replayed to another peer or session, and
 * the secret never travels.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { nonceBytes, protocolVersion } from './protocol.js';

/** A fresh random nonce. */
export function newNonce(): Uint8Array {
  return randomBytes(nonceBytes);
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/** The dialer's proof: it holds the secret, for this cluster, as this node, in this session. */
export function helloProof(secret: Uint8Array, cluster: string, node: string, region: string, acceptorNonce: Uint8Array, dialerNonce: Uint8Array): Uint8Array {
  return createHmac('sha256', secret)
    .update(`tessera/${protocolVersion}|hello|${cluster}|${node}|${region}|${hex(acceptorNonce)}|${hex(dialerNonce)}`)
    .digest();
}

/** The acceptor's proof back, binding its identity to the same session. */
export function welcomeProof(
  secret: Uint8Array,
  cluster: string,
  node: string,
  region: string,
  acceptorNonce: Uint8Array,
  dialerNonce: Uint8Array,
): Uint8Array {
  return createHmac('sha256', secret)
    .update(`tessera/${protocolVersion}|welcome|${cluster}|${node}|${region}|${hex(acceptorNonce)}|${hex(dialerNonce)}`)
    .digest();
}

/** Constant-time comparison of a received proof with the expected one. */
export function proofMatches(expected: Uint8Array, received: Uint8Array): boolean {
  return expected.length === received.length && timingSafeEqual(expected, received);
}
