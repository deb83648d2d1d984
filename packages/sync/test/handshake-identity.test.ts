// Goal (issue 12): the acceptor's judgment of a hello binds the identity its transport authenticated (a hello
// must claim the node and region of the peer's certificate) and bounds the peer's clock offset, without ever
// refusing a peer for latency alone.
// Method: judgeHello and helloClockOffsetMs as pure functions over hand-made hellos, nonces and times.
import t from 'tap';
import { type Frame, clockOffsetMsMaxDefault, helloClockOffsetMs, helloFor, judgeHello, newNonce } from '@tessera/sync';

const secret = Buffer.from('test-cluster-secret-0123456789abcdef');
const acceptor = { cluster: 'test', node: 'b1', region: 'us-east', secret };
const dialer = { cluster: 'test', node: 'a1', region: 'eu-west', secret };
const policy = { version: 0, hash: '' };
const peers = (node: string) =>
  node === 'a1' ? { region: 'eu-west', role: 'accept' as const } : node === 'c1' ? { region: 'ap-south', role: 'accept' as const } : undefined;

function hello(self: typeof dialer, acceptorNonce: Uint8Array, wallMs?: number): Frame {
  const made = helloFor(self, { t: 'challenge', v: 2, nonce: acceptorNonce }, newNonce(), policy, wallMs);
  if (!('frame' in made)) throw new Error(made.reason);
  return made.frame;
}

t.test('a hello must claim the identity of the certificate', async (t) => {
  const nonce = newNonce();
  const frame = hello(dialer, nonce);
  t.equal(judgeHello(acceptor, frame, nonce, peers, policy, { certified: { node: 'a1', region: 'eu-west' } }).ok, true, "a1 with a1's certificate");
  t.equal(judgeHello(acceptor, frame, nonce, peers, policy).ok, true, 'no certificate (in-process transport): the secret alone decides');
  for (const certified of [
    { node: 'c1', region: 'ap-south' },
    { node: 'a1', region: 'ap-south' },
    { node: 'c1', region: 'eu-west' },
  ]) {
    const verdict = judgeHello(acceptor, frame, nonce, peers, policy, { certified });
    t.same(
      verdict.ok ? null : verdict.code,
      'ERR_PEER_IDENTITY',
      `a certificate for ${certified.node} in ${certified.region} cannot say hello as a1 in eu-west`,
    );
    t.match(verdict.ok ? '' : verdict.reason, `certificate is for node ${certified.node} in region ${certified.region}`);
  }
});

t.test('the clock offset a hello proves: refused only beyond the bound whatever the latency', async (t) => {
  const timing = { challengedAtMs: 10_000, receivedAtMs: 10_300, offsetMsMax: clockOffsetMsMaxDefault };
  t.equal(clockOffsetMsMaxDefault, 500);
  // Within [challenged - max, received + max] the dialer's clock may be right: never refused.
  for (const at of [9_500, 10_000, 10_150, 10_300, 10_800, undefined]) t.equal(helloClockOffsetMs(at, timing), null, `at ${at}`);
  t.equal(helloClockOffsetMs(10_801, timing), 501, 'ahead by more than the bound after the whole round trip');
  t.equal(helloClockOffsetMs(9_499, timing), -501, 'behind by more than the bound before the challenge left');
  const nonce = newNonce();
  const ahead = judgeHello(acceptor, hello(dialer, nonce, 12_000), nonce, peers, policy, { timing });
  t.same(ahead.ok ? null : ahead.code, 'ERR_PEER_CLOCK_OFFSET');
  t.match(ahead.ok ? '' : ahead.reason, /node a1's clock is at least 1700 ms ahead of node b1's, over the limit of 500 ms/);
  const behind = judgeHello(acceptor, hello(dialer, nonce, 1_000), nonce, peers, policy, { timing });
  t.match(behind.ok ? '' : behind.reason, /at least 9000 ms behind/);
  t.equal(judgeHello(acceptor, hello(dialer, nonce, 10_200), nonce, peers, policy, { timing }).ok, true, 'a clock within the bound');
  t.equal(judgeHello(acceptor, hello(dialer, nonce, 12_000), nonce, peers, policy).ok, true, 'no timing (the simulation): not judged');
  // The proof is checked first: an unauthenticated peer learns nothing of this node's clock.
  const forged = { ...(hello(dialer, nonce, 12_000) as Frame & { t: 'hello' }), proof: new Uint8Array(32) };
  t.same((judgeHello(acceptor, forged, nonce, peers, policy, { timing }) as { code?: string }).code, 'bad-proof');
});
