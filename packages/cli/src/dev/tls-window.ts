/**
 * A window into one link's mutual TLS, for tests that tap the wire (a dev layout with `onData`). Links between
 * nodes are mutual TLS, so a FaultProxy between them sees only ciphertext. The window ends the link's TLS on
 * both sides of the proxy with the nodes' own keys, which the dev layout made and holds:
 *
 *     dialer ──TLS──▶ front (presents the acceptor's certificate, requires the dialer's)
 *            ──plain──▶ FaultProxy (faults, latency, the tap)
 *            ──plain──▶ back ──TLS──▶ acceptor (presents the dialer's certificate)
 *
 * Both nodes still see exactly the identities they expect, and a fault on the proxy (reset, partition) reaches
 * them as it would without the window. Only for tests: `tessera dev` without a tap links its nodes through the
 * proxies' plain TCP, end-to-end TLS untouched.
 */
import { type Server as NetServer, type Socket, connect as netConnect, createServer as createNetServer } from 'node:net';
import { type TLSSocket, connect as tlsConnect, createServer as createTlsServer } from 'node:tls';

/** A node's key and certificate (PEM). */
export interface NodeCredentials {
  readonly key: string;
  readonly cert: string;
}

/** A running window: `front` is where the dialer connects; the proxy targets `backPort`. */
export interface TlsWindow {
  readonly frontPort: number;
  readonly backPort: number;
  /** Points the front at the proxy (started after the back, which it targets). */
  setProxyPort(port: number): void;
  close(): Promise<void>;
}

/** Pipes two sockets both ways; either one failing or closing ends the other at once. */
function splice(a: Socket | TLSSocket, b: Socket | TLSSocket): void {
  a.pipe(b);
  b.pipe(a);
  const end = () => {
    a.destroy();
    b.destroy();
  };
  for (const socket of [a, b]) {
    socket.on('error', end);
    socket.on('close', end);
  }
}

function listen(server: NetServer, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as { port: number }).port);
    });
  });
}

/** Starts a window for the link dialer → acceptor (listening on `acceptorPort`); the front on `frontPort` (0: any). */
export async function startTlsWindow(options: {
  readonly ca: string;
  readonly dialer: NodeCredentials;
  readonly acceptor: NodeCredentials;
  readonly acceptorPort: number;
  readonly frontPort: number;
}): Promise<TlsWindow> {
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  const back = createNetServer((plain) => {
    track(plain);
    const secure = tlsConnect({ port: options.acceptorPort, host: '127.0.0.1', ca: options.ca, key: options.dialer.key, cert: options.dialer.cert });
    track(secure);
    splice(plain, secure);
  });
  let proxyPort = 0;
  const front = createTlsServer(
    { key: options.acceptor.key, cert: options.acceptor.cert, ca: options.ca, requestCert: true, rejectUnauthorized: true },
    (secure) => {
      track(secure);
      const plain = netConnect(proxyPort, '127.0.0.1');
      track(plain);
      splice(secure, plain);
    },
  );
  front.on('tlsClientError', () => undefined);
  const backPort = await listen(back, 0);
  const frontPort = await listen(front, options.frontPort);
  return {
    frontPort,
    backPort,
    setProxyPort: (port) => {
      proxyPort = port;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await Promise.all([front, back].map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    },
  };
}
