// Goal (issue 12): the policy changes only by its owner's signature, whether a version arrives through the API
// or from a peer. A node with the operator's key installs a signed version a peer offers, stores the signature
// with it and offers it on; a peer that authenticates correctly (it holds the cluster secret) but offers an
// unsigned, re-signed-by-a-stranger or tampered version changes nothing; and a version too far ahead is refused.
// Method: in-process nodes over real WebSockets whose replicas trust one Ed25519 operator key; versions are
// installed on one node through the embedded API (as the HTTP route does), then peers are watched.
import t from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import { formatPolicySignature, parsePolicy, policyVersionJumpMax, signPolicy } from '@tessera/core';
import { eventually, startCluster } from './cluster.js';

const operator = generateKeyPairSync('ed25519');
const stranger = generateKeyPairSync('ed25519');
const trust = { cluster: 'test', keys: [operator.publicKey] };

const policyOf = (version: number, notes = 'global') =>
  parsePolicy(
    `version: ${version}
regions:
  eu-west: { jurisdiction: eu }
  us-east: { jurisdiction: us }
  ap-south: { jurisdiction: ap }
datasets:
  notes: { type: lww, placement: ${notes} }
`,
    `v${version}`,
  );

const specs = [
  { id: 'a1', region: 'eu-west' },
  { id: 'b1', region: 'us-east' },
  { id: 'c1', region: 'ap-south' },
];

t.test('a signed version travels from peer to peer with its signature; unsigned or forged ones change nothing', async (t) => {
  const [a, b, c] = await startCluster(t, specs, { replicaOptions: () => ({ policyTrust: trust }) });
  // Unsigned, through the embedded API of a trusting replica: refused.
  await t.rejects(a!.replica.installPolicy(policyOf(2), 'enforce', 'api'), { code: 'ERR_POLICY_SIGNATURE_INVALID' }, 'an unsigned version is refused');
  await t.rejects(
    a!.replica.installPolicy(policyOf(2), 'enforce', 'api', signPolicy(policyOf(2), 'test', stranger.privateKey)),
    { code: 'ERR_POLICY_SIGNATURE_INVALID', message: /not an operator key/ },
    "a stranger's signature is refused",
  );
  await t.rejects(
    a!.replica.installPolicy(policyOf(2), 'enforce', 'api', signPolicy(policyOf(2), 'other', operator.privateKey)),
    { code: 'ERR_POLICY_SIGNATURE_INVALID', message: /cluster/ },
    'a signature for another cluster is refused',
  );
  await t.rejects(
    a!.replica.installPolicy(policyOf(2, 'local'), 'enforce', 'api', signPolicy(policyOf(2), 'test', operator.privateKey)),
    { code: 'ERR_POLICY_SIGNATURE_INVALID', message: /content hash/ },
    'a signature of other content is refused',
  );
  const far = policyVersionJumpMax + 5;
  await t.rejects(
    a!.replica.installPolicy(policyOf(far), 'enforce', 'api', signPolicy(policyOf(far), 'test', operator.privateKey)),
    { code: 'ERR_POLICY_VERSION_JUMP' },
    'a version too far ahead is refused even when signed',
  );
  t.equal(a!.replica.policy, null, 'nothing was installed');

  const signature = signPolicy(policyOf(2), 'test', operator.privateKey);
  t.ok(await a!.replica.installPolicy(policyOf(2), 'enforce', 'api', signature), 'the signed version is enforced');
  t.equal(a!.replica.policySignature, formatPolicySignature(signature), 'and its signature kept');
  t.ok(await eventually(() => b!.replica.policy?.version === 2 && c!.replica.policy?.version === 2), 'the peers installed it from the link');
  for (const node of [b!, c!]) {
    const record = (await node.replica.policyHistory()).find((r) => r.version === 2);
    t.equal(record?.signature, formatPolicySignature(signature), `${node.id} stored the operator's signature with it`);
    t.match(record?.source, /^peer:/, `${node.id} got it from a peer`);
  }
});

t.test('a peer that holds the cluster secret cannot push an unsigned version', async (t) => {
  // b1's replica trusts nothing and installs an unsigned v3 (a node whose operator check is off, or an attacker
  // with the cluster secret): it offers v3 to a1, whose replica checks signatures.
  const [a, b] = await startCluster(t, specs.slice(0, 2), { replicaOptions: (node) => ({ policyTrust: node === 'a1' ? trust : null }) });
  await b!.replica.installPolicy(policyOf(3, 'local'), 'enforce', 'api');
  t.ok(await eventually(() => a!.sync.status().links.every((l) => l.state === 'open')), 'the link is open');
  // Give the offer time to arrive and be judged, then check nothing changed.
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  t.equal(a!.replica.policy, null, 'a1 installed nothing');
  t.same(
    (await a!.replica.policyHistory()).map((r) => r.version),
    [],
    'and stored nothing',
  );
  t.ok(
    (await a!.replica.audit()).every((e) => e.kind !== 'policy-stored'),
    'no policy record in the audit log',
  );
});
