/**
 * A node's identity in its certificate (issue 12 item 1): one URI subject alternative name
 *
 *     tessera://<cluster>/<region>/<node>
 *
 * Why a URI SAN: it is the one SAN type meant for naming a workload rather than a host (SPIFFE ids,
 * `spiffe://<trust domain>/<path>`, are the same idea, and every TLS stack shows URI SANs); the common name is
 * deprecated for identity (RFC 6125) and DNS/IP SANs say where a node is reachable, which changes with
 * deployments. The cluster is the URI's authority (its trust domain), region and node the path, each already
 * restricted to [a-z0-9._-], so the text needs no escaping and has exactly one spelling.
 *
 * `peerIdentity` is pure over a certificate that TLS already verified against the cluster CA;
 * `verifyNodeCertificate` does that check itself for start-up and tools.
 */
import { X509Certificate } from 'node:crypto';
import { type PeerCertificate } from 'node:tls';
import { TesseraError, checkNodeId, checkRegion } from '@tessera/core';

/** Who a certificate says its holder is. */
export interface PeerIdentity {
  readonly cluster: string;
  readonly region: string;
  readonly node: string;
}

/** The URI scheme of identities. */
export const identityScheme = 'tessera';
const clusterPattern = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** The SAN URI of an identity. Throws the name's `ERR_*_INVALID` for bad names. */
export function identityUri(identity: PeerIdentity): string {
  if (!clusterPattern.test(identity.cluster))
    throw new TesseraError('ERR_PEER_IDENTITY', `cluster id ${JSON.stringify(identity.cluster).slice(0, 80)} is not [a-z0-9][a-z0-9._-]{0,63}`);
  checkRegion(identity.region);
  checkNodeId(identity.node);
  return `${identityScheme}://${identity.cluster}/${identity.region}/${identity.node}`;
}

/**
 * The identity in a verified certificate: a `node:crypto` `X509Certificate`, a PEM text, or what
 * `tlsSocket.getPeerCertificate()` returns. With `cluster`, a certificate of another cluster is refused.
 * Throws `ERR_PEER_IDENTITY` unless the certificate carries exactly one `tessera://` URI of valid names.
 */
export function peerIdentity(cert: X509Certificate | PeerCertificate | string, cluster?: string): PeerIdentity {
  const altNames =
    typeof cert === 'string' ? new X509Certificate(cert).subjectAltName : cert instanceof X509Certificate ? cert.subjectAltName : cert.subjectaltname;
  // Node lists SANs as "TYPE:value, TYPE:value" and quotes (JSON) any value holding a separator, so a split on
  // ", " cannot cut a valid identity; a quoted tessera URI is not valid anyway.
  const uris = (altNames ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('URI:'))
    .map((entry) => entry.slice(4));
  const ours = uris.filter((uri) => uri.startsWith(`${identityScheme}://`) || uri.startsWith(`"${identityScheme}://`));
  if (ours.length !== 1)
    throw new TesseraError('ERR_PEER_IDENTITY', `the certificate carries ${ours.length} tessera:// identities; a node certificate carries exactly one`);
  const match = /^tessera:\/\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(ours[0]!);
  if (match === null)
    throw new TesseraError(
      'ERR_PEER_IDENTITY',
      `the certificate's identity ${JSON.stringify(ours[0]!.slice(0, 200))} is not tessera://<cluster>/<region>/<node>`,
    );
  const identity = { cluster: match[1]!, region: match[2]!, node: match[3]! };
  try {
    if (identityUri(identity) !== ours[0]) throw new Error('not canonical');
  } catch (error) {
    throw new TesseraError('ERR_PEER_IDENTITY', `the certificate's identity ${JSON.stringify(ours[0]!.slice(0, 200))} is invalid: ${(error as Error).message}`);
  }
  if (cluster !== undefined && identity.cluster !== cluster) {
    throw new TesseraError('ERR_PEER_IDENTITY', `the certificate is for cluster "${identity.cluster}", not "${cluster}"`);
  }
  return identity;
}

/**
 * Checks that `certPem` is a node certificate issued and signed by `caPem`, valid at `nowMs`, not itself a
 * CA, and returns its identity (of `cluster` when given). Throws `ERR_PEER_IDENTITY`.
 */
export function verifyNodeCertificate(certPem: string, caPem: string, nowMs: number, cluster?: string): PeerIdentity {
  let cert: X509Certificate;
  let ca: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
    ca = new X509Certificate(caPem);
  } catch (error) {
    throw new TesseraError('ERR_PEER_IDENTITY', `not a PEM certificate: ${(error as Error).message}`);
  }
  if (cert.ca) throw new TesseraError('ERR_PEER_IDENTITY', 'the certificate is a CA certificate, not a node certificate');
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey))
    throw new TesseraError('ERR_PEER_IDENTITY', `the certificate was not issued by the cluster CA (${ca.subject.replace(/\n/g, ', ')})`);
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (!(nowMs >= from && nowMs <= to))
    throw new TesseraError('ERR_PEER_IDENTITY', `the certificate is valid from ${cert.validFrom} to ${cert.validTo}, not now`);
  return peerIdentity(cert, cluster);
}
