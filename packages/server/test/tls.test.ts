// Goal (issue 12 item 1, the tooling part): node certificates bind cluster, region and node as one URI SAN;
// peerIdentity reads exactly that back from a verified certificate and refuses certificates without one, with
// two, with a malformed one or of another cluster; verifyNodeCertificate refuses a foreign CA, a CA certificate
// and an expired certificate. Mutual TLS with these certificates works between two Node TLS endpoints.
// Method: certificates made with createClusterCa/createNodeCertificate; a TLS server and client on loopback.
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { createClusterCa, createNodeCertificate, identityUri, peerIdentity, verifyNodeCertificate } from '../src/index.js';

const nowMs = Date.now();

t.test('a node certificate names its node; peerIdentity reads it back; verification refuses what is not one', async (t) => {
  const ca = await createClusterCa('prod', nowMs);
  const node = await createNodeCertificate(ca, { cluster: 'prod', region: 'eu-west', node: 'eu-west-1' }, ['127.0.0.1', 'eu-west-1.internal'], nowMs);
  const cert = new X509Certificate(node.certPem);
  t.match(cert.subjectAltName, /URI:tessera:\/\/prod\/eu-west\/eu-west-1/);
  t.match(cert.subjectAltName, /DNS:eu-west-1\.internal/);
  t.match(cert.subjectAltName, /IP Address:127\.0\.0\.1/);
  t.notOk(cert.ca, 'a node certificate is no CA');
  t.ok(new X509Certificate(ca.certPem).ca);
  t.same(peerIdentity(cert), { cluster: 'prod', region: 'eu-west', node: 'eu-west-1' });
  t.same(peerIdentity(node.certPem, 'prod'), { cluster: 'prod', region: 'eu-west', node: 'eu-west-1' }, 'from PEM, for this cluster');
  t.throws(() => peerIdentity(cert, 'staging'), { code: 'ERR_PEER_IDENTITY', message: /for cluster "prod", not "staging"/ });
  t.same(verifyNodeCertificate(node.certPem, ca.certPem, nowMs, 'prod'), { cluster: 'prod', region: 'eu-west', node: 'eu-west-1' });

  const foreign = await createClusterCa('prod', nowMs);
  t.throws(() => verifyNodeCertificate(node.certPem, foreign.certPem, nowMs), { code: 'ERR_PEER_IDENTITY', message: /not issued by the cluster CA/ });
  t.throws(() => verifyNodeCertificate(ca.certPem, ca.certPem, nowMs), { code: 'ERR_PEER_IDENTITY', message: /a CA certificate, not a node certificate/ });
  t.throws(() => verifyNodeCertificate(node.certPem, ca.certPem, nowMs + 400 * 86_400_000), { code: 'ERR_PEER_IDENTITY', message: /valid from .* not now/ });

  // What a TLS peer certificate looks like to peerIdentity when it is not a Tessera node's.
  for (const [what, altNames, message] of [
    ['no identity', 'DNS:node.example', /carries 0 tessera:\/\/ identities/],
    ['two identities', 'URI:tessera://prod/eu-west/a, URI:tessera://prod/us-east/b', /carries 2 tessera:\/\/ identities/],
    ['a path too long', 'URI:tessera://prod/eu-west/a/b', /is not tessera:\/\/<cluster>\/<region>\/<node>/],
    ['an upper-case node', 'URI:tessera://prod/eu-west/Node-1', /is invalid/],
    ['a quoted value', 'URI:"tessera://prod/eu-west/a,b"', /is not tessera:\/\/<cluster>\/<region>\/<node>/],
  ] as const) {
    t.throws(() => peerIdentity({ subjectaltname: altNames } as never), { code: 'ERR_PEER_IDENTITY', message }, what);
  }
  t.equal(identityUri({ cluster: 'prod', region: 'eu-west', node: 'eu-west-1' }), 'tessera://prod/eu-west/eu-west-1');
  await t.rejects(createNodeCertificate(ca, { cluster: 'prod', region: 'eu-west', node: 'x' }, ['not a host!'], nowMs), { code: 'ERR_OPTION_INVALID' });
});

t.test("mutual TLS with two node certificates: each side reads the other's identity", async (t) => {
  const ca = await createClusterCa('prod', nowMs);
  const server = await createNodeCertificate(ca, { cluster: 'prod', region: 'eu-west', node: 'eu-west-1' }, ['127.0.0.1'], nowMs);
  const client = await createNodeCertificate(ca, { cluster: 'prod', region: 'us-east', node: 'us-east-1' }, ['127.0.0.1'], nowMs);
  let seenByServer: unknown = null;
  const tls = createServer({ key: server.keyPem, cert: server.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (socket: TLSSocket) => {
    seenByServer = peerIdentity(socket.getPeerCertificate(), 'prod');
    socket.end('hello');
  });
  await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => tls.close(() => resolve())));
  const port = (tls.address() as { port: number }).port;
  const seenByClient = await new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, key: client.keyPem, cert: client.certPem, ca: ca.certPem }, () =>
      resolve(peerIdentity(socket.getPeerCertificate(), 'prod')),
    );
    socket.on('error', reject);
    socket.on('data', () => socket.end());
  });
  t.same(seenByClient, { cluster: 'prod', region: 'eu-west', node: 'eu-west-1' });
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.same(seenByServer, { cluster: 'prod', region: 'us-east', node: 'us-east-1' });
});
