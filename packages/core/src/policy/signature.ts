/**
 * Signed policies (DESIGN §4, issue 12 item 3): a policy version takes effect only when the operator key that
 * the cluster config names signed it. Pure: node:crypto's Ed25519 `sign`/`verify` and SHA-256 only — no files,
 * no clock, no randomness (Ed25519 signatures are deterministic).
 *
 * What is signed is a short, domain-separated statement, never the YAML text itself:
 *
 *     tessera-policy-signature-v1\n<cluster id>\n<version>\n<sha256 hex of policy.canonical>\n<replaces>
 *
 * - The canonical form (sorted keys, defaults written out) is what every node stores and hashes
 *   (`policyHash`), so reformatting or re-commenting a policy file keeps its signature valid, while any change of
 *   meaning breaks it.
 * - The cluster id stops a policy signed for one cluster (staging) from being replayed on another (prod)
 *   that trusts the same operator key.
 * - The version is signed with the hash, so a signature cannot be moved to another version number.
 * - `<replaces>` is `-` or `<version>:<hash>` of the enforced version this one is signed to supersede (the
 *   audited replacement of a bad version): the statement then holds only while that version is the enforced one.
 *
 * The signature travels next to the policy as a small JSON document (`<policy file>.sig`, the `signature` field
 * of `POST /v1/policy`, and — wired by the sync layer — the policy frame).
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { TesseraError } from '../errors.js';
import { isPlainObject } from '../json.js';
import { type Policy } from './policy.js';

/** The `format` of a signature document. */
export const policySignatureFormat = 'tessera-policy-signature-v1';
/** A signature document, in bytes of JSON (it is a few hundred bytes; anything larger is refused unparsed). */
export const policySignatureBytesMax = 4 * 1024;
/**
 * How far above the enforced version a new version may be. Versions are chosen by people and can never go back
 * (versions are immutable and monotonic), so one mistyped or hostile jump (2^53−1) would end the cluster's
 * ability to take any later version. A bound of 1000 leaves room for any numbering people use in practice
 * (a release a day for almost three years without ever applying one), while the whole safe-integer range
 * would take 9·10^12 accepted steps to exhaust.
 */
export const policyVersionJumpMax = 1_000;

/** A policy version named by its number and content hash (SHA-256 hex of its canonical form). */
export interface PolicyStampRef {
  readonly version: number;
  readonly hash: string;
}

/** A detached signature of one policy version. */
export interface PolicySignature {
  readonly format: typeof policySignatureFormat;
  readonly cluster: string;
  readonly version: number;
  /** SHA-256 hex of the policy's canonical form. */
  readonly hash: string;
  /** The enforced version this one supersedes (a replacement), or null. */
  readonly replaces: PolicyStampRef | null;
  /** `keyIdOf` the signing key: lets a reader pick the key and say which key signed in audit entries. */
  readonly keyId: string;
  /** The Ed25519 signature of `policySigningInput`, base64. */
  readonly signature: string;
}

const hashPattern = /^[0-9a-f]{64}$/;
const keyIdPattern = /^[0-9a-f]{16}$/;
const clusterPattern = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const base64Pattern = /^[A-Za-z0-9+/]{86}==$/;

/** SHA-256 hex of a policy's canonical form: the content hash every node stores (`policyHash` in the store). */
export function policyContentHash(policy: Policy): string {
  return createHash('sha256').update(policy.canonical).digest('hex');
}

/** The bytes an operator key signs for a policy version (see the file comment). */
export function policySigningInput(cluster: string, version: number, hash: string, replaces: PolicyStampRef | null): Buffer {
  const replaced = replaces === null ? '-' : `${replaces.version}:${replaces.hash}`;
  return Buffer.from(`${policySignatureFormat}\n${cluster}\n${version}\n${hash}\n${replaced}`, 'utf8');
}

/** A short id of a public key: the first 16 hex characters of SHA-256 of its SPKI DER encoding. */
export function keyIdOf(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex')
    .slice(0, 16);
}

/** Signs `policy` for `cluster` with an Ed25519 private key. Throws `ERR_OPTION_INVALID` for another kind of key. */
export function signPolicy(policy: Policy, cluster: string, privateKey: KeyObject, replaces: PolicyStampRef | null = null): PolicySignature {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') {
    throw new TesseraError(
      'ERR_OPTION_INVALID',
      `a policy is signed with an Ed25519 private key, not a ${privateKey.asymmetricKeyType ?? 'secret'} ${privateKey.type} key`,
    );
  }
  checkCluster(cluster);
  if (replaces !== null) checkStamp(replaces, 'replaces');
  const hash = policyContentHash(policy);
  const signature = sign(null, policySigningInput(cluster, policy.version, hash, replaces), privateKey).toString('base64');
  return { format: policySignatureFormat, cluster, version: policy.version, hash, replaces, keyId: keyIdOf(privateKey), signature };
}

/** The JSON text of a signature document (what `tessera policy sign` writes). */
export function formatPolicySignature(signature: PolicySignature): string {
  return `${JSON.stringify(signature, null, 2)}\n`;
}

/**
 * Parses a signature document: a JSON text or an already parsed object. Strict: every field present, of the
 * right form, nothing else. Throws `ERR_POLICY_SIGNATURE_INVALID`.
 */
export function parsePolicySignature(input: unknown): PolicySignature {
  let value = input;
  if (typeof input === 'string') {
    if (Buffer.byteLength(input) > policySignatureBytesMax) throw invalid(`the signature document is over ${policySignatureBytesMax} bytes`);
    try {
      value = JSON.parse(input);
    } catch {
      throw invalid('the signature document is not JSON');
    }
  }
  if (!isPlainObject(value)) throw invalid('the signature must be an object { format, cluster, version, hash, replaces, keyId, signature }');
  const fields = ['format', 'cluster', 'version', 'hash', 'replaces', 'keyId', 'signature'];
  for (const field of Object.keys(value)) {
    if (!fields.includes(field)) throw invalid(`unknown field ${JSON.stringify(field).slice(0, 40)} (the fields are ${fields.join(', ')})`);
  }
  if (value.format !== policySignatureFormat) throw invalid(`format must be "${policySignatureFormat}"`);
  if (typeof value.cluster !== 'string' || !clusterPattern.test(value.cluster)) throw invalid('cluster must be a cluster id');
  if (!isVersion(value.version)) throw invalid('version must be a positive safe integer');
  if (typeof value.hash !== 'string' || !hashPattern.test(value.hash)) throw invalid('hash must be 64 lowercase hex characters (SHA-256)');
  if (value.replaces !== null) {
    if (!isPlainObject(value.replaces) || Object.keys(value.replaces).sort().join() !== 'hash,version')
      throw invalid('replaces must be null or { version, hash }');
    if (!isVersion(value.replaces.version) || typeof value.replaces.hash !== 'string' || !hashPattern.test(value.replaces.hash)) {
      throw invalid('replaces must name a version (positive integer) and its hash (64 hex characters)');
    }
  }
  if (typeof value.keyId !== 'string' || !keyIdPattern.test(value.keyId)) throw invalid('keyId must be 16 lowercase hex characters');
  if (typeof value.signature !== 'string' || !base64Pattern.test(value.signature)) throw invalid('signature must be the 64-byte Ed25519 signature in base64');
  const replaces = value.replaces === null ? null : { version: value.replaces.version as number, hash: value.replaces.hash as string };
  return {
    format: policySignatureFormat,
    cluster: value.cluster,
    version: value.version,
    hash: value.hash,
    replaces,
    keyId: value.keyId,
    signature: value.signature,
  };
}

/**
 * Verifies that `signature` (a document, parsed or not) signs `policy` for `cluster` with one of `publicKeys`
 * (Ed25519). Returns the parsed signature and the id of the key that verified it. Throws
 * `ERR_POLICY_SIGNATURE_INVALID` naming what does not match: the cluster, the version, the content hash, an
 * unknown key, or a signature that does not verify. The version bound and `replaces` are judged against the
 * node's state by `checkPolicySuccession`.
 */
export function verifyPolicySignature(
  policy: Policy,
  signature: unknown,
  publicKeys: readonly KeyObject[],
  cluster: string,
): { signature: PolicySignature; keyId: string } {
  if (signature === undefined || signature === null)
    throw invalid(`policy version ${policy.version} is not signed: sign it with the operator key (tessera policy sign --key operator.key)`);
  const parsed = parsePolicySignature(signature);
  if (parsed.cluster !== cluster) throw invalid(`the signature is for cluster "${parsed.cluster}", not this cluster "${cluster}"`);
  if (parsed.version !== policy.version) throw invalid(`the signature is for version ${parsed.version}, not version ${policy.version}`);
  const hash = policyContentHash(policy);
  if (parsed.hash !== hash)
    throw invalid(
      `the signature is for content hash ${parsed.hash.slice(0, 12)}…, but policy version ${policy.version} has content hash ${hash.slice(0, 12)}… (the policy changed after it was signed)`,
    );
  const key = publicKeys.find((candidate) => keyIdOf(candidate) === parsed.keyId);
  if (key === undefined) {
    throw invalid(
      `the signature was made with key ${parsed.keyId}, which is not an operator key of this cluster (${publicKeys.map(keyIdOf).join(', ') || 'none configured'})`,
    );
  }
  if (key.asymmetricKeyType !== 'ed25519') throw invalid(`operator key ${parsed.keyId} is not an Ed25519 key`);
  const ok = verify(null, policySigningInput(cluster, parsed.version, parsed.hash, parsed.replaces), key, Buffer.from(parsed.signature, 'base64'));
  if (!ok) throw invalid(`the signature of policy version ${policy.version} does not verify with operator key ${parsed.keyId}`);
  return { signature: parsed, keyId: parsed.keyId };
}

/**
 * Whether a signed version may follow the enforced one (`enforced` null: none yet). Throws
 * `ERR_POLICY_VERSION_JUMP` when the version is more than `policyVersionJumpMax` above the enforced one, and
 * `ERR_POLICY_CONFLICT` when the signature names a version it replaces that is not the enforced one (a
 * replacement statement is good for the state it was signed against, never later).
 */
export function checkPolicySuccession(enforced: PolicyStampRef | null, next: PolicySignature): void {
  const base = enforced?.version ?? 0;
  if (next.version > base + policyVersionJumpMax) {
    throw new TesseraError(
      'ERR_POLICY_VERSION_JUMP',
      `policy version ${next.version} is ${next.version - base} above the enforced version ${base}: a new version may be at most ${policyVersionJumpMax} above it`,
    );
  }
  if (next.replaces !== null && (enforced === null || enforced.version !== next.replaces.version || enforced.hash !== next.replaces.hash)) {
    throw new TesseraError(
      'ERR_POLICY_CONFLICT',
      `policy version ${next.version} is signed to replace version ${next.replaces.version} (${next.replaces.hash.slice(0, 12)}…), but the enforced version is ${enforced === null ? 'none' : `${enforced.version} (${enforced.hash.slice(0, 12)}…)`}`,
    );
  }
}

function isVersion(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}

function checkCluster(cluster: string): void {
  if (!clusterPattern.test(cluster))
    throw new TesseraError('ERR_OPTION_INVALID', `cluster id ${JSON.stringify(cluster).slice(0, 80)} is not [a-z0-9][a-z0-9._-]{0,63}`);
}

function checkStamp(stamp: PolicyStampRef, what: string): void {
  if (!isVersion(stamp.version) || !hashPattern.test(stamp.hash))
    throw new TesseraError('ERR_OPTION_INVALID', `${what}: expected a version and a 64-hex content hash`);
}

function invalid(reason: string): TesseraError {
  return new TesseraError('ERR_POLICY_SIGNATURE_INVALID', `policy signature refused: ${reason}`);
}
