/**
 * Creating the cluster's certificates (`tessera certs`, `tessera dev`, tests): a cluster CA and one key and
 * certificate per node, with the node's identity bound in as a URI SAN (see identity.ts) next to the DNS names
 * and IP addresses it is reached at. X.509 is built by @peculiar/x509 over WebCrypto; Node's crypto only parses.
 *
 * Keys are ECDSA P-256: every TLS stack and browser (the dashboard) accepts it, unlike Ed25519 certificates.
 * Node certificates carry serverAuth and clientAuth, so one certificate serves the API and mutual TLS between
 * nodes; the CA may sign node certificates only (path length 0).
 */
import { randomBytes, webcrypto } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
import { isIP } from 'node:net';
import type * as X509 from '@peculiar/x509';
import { TesseraError } from '@tessera/core';
import { type PeerIdentity, identityUri } from './identity.js';

let loaded: Promise<typeof X509> | null = null;

/**
 * @peculiar/x509 (and its ASN.1 schemas) is loaded on first use: only `tessera certs` and `tessera dev` create
 * certificates, and every other start of the CLI or the daemon should not pay for it. It resolves its services
 * through tsyringe, which needs the Reflect metadata API loaded first.
 */
function x509Module(): Promise<typeof X509> {
  loaded ??= import('reflect-metadata')
    .then(() => import('@peculiar/x509'))
    .then((x509) => {
      x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
      return x509;
    });
  return loaded;
}

/** Validity of a new CA. */
export const caValidityDays = 3650;
/** Validity of a new node certificate (rotate yearly; `tessera certs node` again with the same CA). */
export const nodeCertValidityDays = 365;
/** DNS names and IP addresses one node certificate may name. */
export const certHostsMax = 32;

const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const dnsPattern = /^(?=.{1,253}$)[A-Za-z0-9*](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** A certificate and its private key, both PEM. */
export interface KeyAndCert {
  readonly certPem: string;
  readonly keyPem: string;
}

/** Creates a cluster CA. `nowMs` is the start of its validity. */
export async function createClusterCa(cluster: string, nowMs: number, days = caValidityDays): Promise<KeyAndCert> {
  identityUri({ cluster, region: 'x', node: 'x' });
  const x509 = await x509Module();
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=Tessera cluster CA ${cluster}, O=tessera`,
    notBefore: new Date(nowMs - 60_000),
    notAfter: new Date(nowMs + days * 86_400_000),
    signingAlgorithm: algorithm,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await exportKey(x509, keys.privateKey) };
}

/**
 * Creates a node's key and certificate signed by the CA: identity `tessera://cluster/region/node` plus the
 * `hosts` (DNS names or IP addresses) clients and peers reach it at. Throws `ERR_OPTION_INVALID`.
 */
export async function createNodeCertificate(
  ca: KeyAndCert,
  identity: PeerIdentity,
  hosts: readonly string[],
  nowMs: number,
  days = nodeCertValidityDays,
): Promise<KeyAndCert> {
  const uri = identityUri(identity);
  if (hosts.length === 0 || hosts.length > certHostsMax)
    throw new TesseraError('ERR_OPTION_INVALID', `a node certificate names 1 to ${certHostsMax} hosts, got ${hosts.length}`);
  const x509 = await x509Module();
  const names: X509.JsonGeneralName[] = [{ type: 'url', value: uri }];
  for (const host of new Set(hosts)) {
    if (isIP(host) !== 0) names.push({ type: 'ip', value: host });
    else if (dnsPattern.test(host)) names.push({ type: 'dns', value: host.toLowerCase() });
    else throw new TesseraError('ERR_OPTION_INVALID', `host ${JSON.stringify(host).slice(0, 80)} is neither an IP address nor a DNS name`);
  }
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await importKey(x509, ca.keyPem);
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${identity.node}, OU=${identity.region}, O=tessera ${identity.cluster}`,
    issuer: caCert.subject,
    notBefore: new Date(nowMs - 60_000),
    notAfter: new Date(Math.min(nowMs + days * 86_400_000, caCert.notAfter.getTime())),
    signingAlgorithm: algorithm,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(names),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await exportKey(x509, keys.privateKey) };
}

/** A positive 128-bit serial number, hex (RFC 5280 wants them unique per CA, at most 20 bytes). */
function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString('hex');
}

async function exportKey(x509: typeof X509, key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function importKey(x509: typeof X509, pem: string): Promise<CryptoKey> {
  try {
    return await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(pem), algorithm, false, ['sign']);
  } catch (error) {
    throw new TesseraError('ERR_OPTION_INVALID', `the CA key is not a PKCS#8 ECDSA P-256 key: ${(error as Error).message}`);
  }
}
