// Goal: a policy signature binds the cluster, the version, the canonical content and the replaced version, and
// verifies only with the operator key; anything else is refused with ERR_POLICY_SIGNATURE_INVALID naming what
// differs; version jumps are bounded; the module stays pure (same input, same signature).
// Method: Ed25519 keys from node:crypto; a policy reformatted, changed, and signed for other clusters and versions.
import t from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import {
  checkPolicySuccession,
  formatPolicySignature,
  keyIdOf,
  parsePolicy,
  parsePolicySignature,
  policyContentHash,
  policyVersionJumpMax,
  signPolicy,
  verifyPolicySignature,
} from '@tessera/core';

const text = (version: number, extra = '') => `version: ${version}
regions:
  eu-west: { jurisdiction: eu }
datasets:
  catalog: { type: map, placement: global }${extra}
`;
const key = generateKeyPairSync('ed25519');
const other = generateKeyPairSync('ed25519');

t.test('sign and verify; reformatting keeps the signature, a change of meaning breaks it', async (t) => {
  const policy = parsePolicy(text(3), 'p');
  const signature = signPolicy(policy, 'prod', key.privateKey);
  t.same(signPolicy(policy, 'prod', key.privateKey), signature, 'Ed25519 is deterministic: the module needs no randomness');
  t.equal(signature.keyId, keyIdOf(key.publicKey));
  t.equal(signature.hash, policyContentHash(policy));
  t.same(
    verifyPolicySignature(policy, formatPolicySignature(signature), [other.publicKey, key.publicKey], 'prod').keyId,
    signature.keyId,
    'a text signature, one of several keys',
  );
  const reformatted = parsePolicy(`# a comment\n${text(3).replace('{ type: map, placement: global }', '{ placement: global, type: map }')}`, 'p');
  t.doesNotThrow(() => verifyPolicySignature(reformatted, signature, [key.publicKey], 'prod'), 'the canonical form is signed, not the bytes of the file');
  const changed = parsePolicy(text(3).replace('global', '{ regions: [eu-west] }'), 'p');
  t.throws(() => verifyPolicySignature(changed, signature, [key.publicKey], 'prod'), {
    code: 'ERR_POLICY_SIGNATURE_INVALID',
    message: /the policy changed after it was signed/,
  });
  t.throws(() => verifyPolicySignature(policy, signature, [key.publicKey], 'staging'), { message: /for cluster "prod", not this cluster "staging"/ });
  t.throws(() => verifyPolicySignature(parsePolicy(text(4), 'p'), signature, [key.publicKey], 'prod'), { message: /for version 3, not version 4/ });
  t.throws(() => verifyPolicySignature(policy, signature, [other.publicKey], 'prod'), { message: /not an operator key of this cluster/ });
  t.throws(() => verifyPolicySignature(policy, undefined, [key.publicKey], 'prod'), { message: /policy version 3 is not signed/ });
  const moved = { ...signature, replaces: { version: 2, hash: 'a'.repeat(64) } };
  t.throws(() => verifyPolicySignature(policy, moved, [key.publicKey], 'prod'), { message: /does not verify/ }, 'the replaced version is signed too');
});

t.test('parsing is strict', async (t) => {
  const signature = signPolicy(parsePolicy(text(1), 'p'), 'prod', key.privateKey);
  for (const [what, value, message] of [
    ['not JSON', '{', /not JSON/],
    ['extra field', { ...signature, note: 1 }, /unknown field "note"/],
    ['bad hash', { ...signature, hash: 'xyz' }, /hash must be/],
    ['bad version', { ...signature, version: 0 }, /version must be a positive safe integer/],
    ['short signature', { ...signature, signature: 'AAAA' }, /64-byte Ed25519 signature/],
    ['huge', 'x'.repeat(5_000), /over 4096 bytes/],
  ] as const)
    t.throws(() => parsePolicySignature(value), { code: 'ERR_POLICY_SIGNATURE_INVALID', message }, what);
  t.throws(
    () => signPolicy(parsePolicy(text(1), 'p'), 'prod', generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey),
    { code: 'ERR_OPTION_INVALID' },
    'only Ed25519 signs',
  );
});

t.test('version jumps are bounded; a replacement holds only against the version it names', async (t) => {
  const sig = (version: number, replaces: { version: number; hash: string } | null = null) =>
    signPolicy(parsePolicy(text(version), 'p'), 'prod', key.privateKey, replaces);
  t.doesNotThrow(() => checkPolicySuccession(null, sig(policyVersionJumpMax)), 'the first version may be up to the bound');
  t.throws(() => checkPolicySuccession(null, sig(policyVersionJumpMax + 1)), { code: 'ERR_POLICY_VERSION_JUMP' });
  t.throws(() => checkPolicySuccession({ version: 7, hash: 'a'.repeat(64) }, sig(Number.MAX_SAFE_INTEGER)), {
    code: 'ERR_POLICY_VERSION_JUMP',
    message: /above the enforced version 7/,
  });
  const enforced = { version: 7, hash: 'b'.repeat(64) };
  t.doesNotThrow(() => checkPolicySuccession(enforced, sig(8, enforced)));
  t.throws(() => checkPolicySuccession({ version: 8, hash: 'c'.repeat(64) }, sig(9, enforced)), {
    code: 'ERR_POLICY_CONFLICT',
    message: /signed to replace version 7/,
  });
});
