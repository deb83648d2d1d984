/**
 * What a daemon reads at start to be secure by default: its tokens (no tokens file, no start: an API without
 * credentials would be open to anyone), its TLS key and certificate (the key private to its owner, the
 * certificate issued by the cluster CA for exactly this cluster, region and node), and the operator's public
 * key that signs policies (refused if the file holds a private key: that key never lives on a data node); with
 * that key, the config's policy file must carry its signature (`<file>.sig`). A node with peers must have TLS:
 * peer links are mutual TLS only.
 */
import { type KeyObject, createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { TesseraError, verifyPolicySignature } from '@tessera/core';
import { TokenStore } from './auth/tokens.js';
import { type ClusterConfig, type NodeConfig } from './config.js';
import { checkPrivateFilePath } from './files.js';
import { verifyNodeCertificate } from './tls/identity.js';

/** A node's credentials and trust, as loaded at start. */
export interface NodeSecurity {
  readonly tokens: TokenStore;
  readonly tls: { readonly key: string; readonly cert: string; readonly ca: string } | null;
  readonly operatorKeys: readonly KeyObject[];
  /** The operator's signature of the config's policy file (`<file>.sig`), when it has one. */
  readonly policySignature: string | null;
  /** Host names the node answers to (listen and advertise names of every node, and `api.hosts`). */
  readonly hosts: readonly string[];
}

/** Loads and checks what `node` needs. Throws `ERR_CONFIG_INVALID` (or `ERR_PEER_IDENTITY` for a certificate of another node). */
export function loadNodeSecurity(config: ClusterConfig, node: NodeConfig, nowMs: number): NodeSecurity {
  const tokens = TokenStore.fromFile(config.api.tokensFile);
  // Links between daemons are mutual TLS, never plain: a node with peers needs its certificate.
  if (node.tls === null && config.nodes.length > 1) {
    throw new TesseraError(
      'ERR_CONFIG_INVALID',
      `node ${node.id}: links to peers are mutual TLS; give every node cert and key and the cluster tls.ca (tessera certs)`,
    );
  }
  let tls: NodeSecurity['tls'] = null;
  if (node.tls !== null) {
    checkPrivateFilePath(node.tls.key, 'TLS key');
    const key = read(node.tls.key, 'TLS key');
    const cert = read(node.tls.cert, 'TLS certificate');
    const ca = read(config.tlsCa!, 'cluster CA certificate');
    const identity = verifyNodeCertificate(cert, ca, nowMs, config.cluster);
    if (identity.node !== node.id || identity.region !== node.region) {
      throw new TesseraError(
        'ERR_PEER_IDENTITY',
        `${node.tls.cert}: the certificate is for node ${identity.node} in ${identity.region}, not ${node.id} in ${node.region}`,
      );
    }
    try {
      createPrivateKey(key);
    } catch (error) {
      throw new TesseraError('ERR_CONFIG_INVALID', `${node.tls.key}: not a PEM private key: ${(error as Error).message}`);
    }
    tls = { key, cert, ca };
  }
  const operatorKeys: KeyObject[] = [];
  if (config.operatorKey !== null) {
    const text = read(config.operatorKey, 'operator public key');
    if (/PRIVATE KEY/.test(text)) {
      throw new TesseraError(
        'ERR_CONFIG_INVALID',
        `${config.operatorKey}: operatorKey holds a private key; a data node gets the public key only (tessera policy keygen writes both)`,
      );
    }
    let key: KeyObject;
    try {
      key = createPublicKey(text);
    } catch (error) {
      throw new TesseraError('ERR_CONFIG_INVALID', `${config.operatorKey}: not a PEM public key: ${(error as Error).message}`);
    }
    if (key.asymmetricKeyType !== 'ed25519')
      throw new TesseraError('ERR_CONFIG_INVALID', `${config.operatorKey}: the operator key must be Ed25519, not ${key.asymmetricKeyType}`);
    operatorKeys.push(key);
  }
  // The config's own policy file takes effect at start: with an operator key it must be signed too
  // (`<policy file>.sig`), as a version from the API or from a peer must.
  let policySignature: string | null = null;
  if (config.policy !== null && operatorKeys.length > 0) {
    const signaturePath = `${config.policyPath!}.sig`;
    try {
      policySignature = readFileSync(signaturePath, 'utf8');
    } catch {
      throw new TesseraError(
        'ERR_POLICY_SIGNATURE_INVALID',
        `${signaturePath}: the policy file ${config.policyPath} is not signed (tessera policy sign ${config.policyPath} --key operator.key --cluster ${config.cluster})`,
      );
    }
    verifyPolicySignature(config.policy, policySignature, operatorKeys, config.cluster);
  }
  const hosts = new Set(config.api.hosts);
  for (const each of config.nodes) for (const address of [each.listen, each.advertise]) hosts.add(address.host.toLowerCase());
  return { tokens, tls, operatorKeys, policySignature, hosts: [...hosts] };
}

function read(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new TesseraError('ERR_CONFIG_INVALID', `${path}: cannot read the ${what} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}
