/**
 * The daemon's listener (issue 12 items 1 and 5, issue 14 item 7): one port for the HTTP API (HTTPS when the
 * node has a certificate) and the peer WebSocket, with bounded resources before anything is authenticated.
 *
 * - Connection caps: at most `connectionsMax` in total and `connectionsPerSourceMax` from one address; past
 *   them a connection is closed at once (and logged with `ERR_CONNECTIONS_EXCEEDED`).
 * - Timeouts: a connection must send its first byte within `firstByteMsMax`, complete a TLS handshake within
 *   `tlsHandshakeMsMax`, its headers within `headersMsMax` and its whole request within `requestMsMax`; an idle
 *   keep-alive connection closes after `keepAliveMsMax`. Bodies are bounded per route (413 with
 *   `Connection: close`, chunked or not).
 * - TLS: with a certificate, a connection whose first byte opens a TLS handshake goes to the HTTPS server.
 *   Every plain-HTTP request is refused with `ERR_TLS_REQUIRED`, an upgrade too: peers dial `wss://` only.
 *   The HTTPS server asks every client for a certificate issued by the cluster CA (`requestCert`) but lets one
 *   without it through, because the API and the dashboard on the same port authenticate with tokens; the peer
 *   endpoint then upgrades only a connection whose certificate verified (`SyncNode.handleUpgrade`), so a
 *   client without a node certificate never gets a peer WebSocket. (`rejectUnauthorized: true` would need a
 *   port of its own for peers.)
 * - Drain: `close()` stops accepting; `destroyAll()` force-closes whatever is left.
 */
import { type IncomingMessage, type ServerResponse, type Server as HttpServer, createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type Server as NetServer, type Socket, createServer as createNetServer } from 'node:net';
import { type Duplex } from 'node:stream';
import { TesseraError } from '@tessera/core';
import { problemOf } from './problem.js';

/** Connections held at once, in total. */
export const connectionsMax = 1_024;
/** Connections held at once from one source address. */
export const connectionsPerSourceMax = 64;
/** A new connection must send something within this time. */
export const firstByteMsMax = 10_000;
/** A TLS handshake must complete within this time. */
export const tlsHandshakeMsMax = 10_000;
/** A request's headers must arrive within this time. */
export const headersMsMax = 10_000;
/** A whole request (headers and body) must arrive within this time. */
export const requestMsMax = 60_000;
/** An idle keep-alive connection is closed after this time. */
export const keepAliveMsMax = 5_000;

/** What the listener serves. */
export interface ListenerOptions {
  readonly handle: (req: IncomingMessage, res: ServerResponse) => void;
  readonly upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /**
   * The node's key and certificate (PEM), and the cluster CA that client certificates are verified against;
   * without them the API is plain HTTP (a node without peers).
   */
  readonly tls: { readonly key: string; readonly cert: string; readonly ca: string } | null;
  readonly log: (event: Record<string, unknown>) => void;
  readonly connectionsMax?: number;
  readonly connectionsPerSourceMax?: number;
}

/** The listening front server and what it dispatches to. */
export interface Listener {
  readonly front: NetServer;
  /** Stops accepting connections (existing ones go on). */
  close(): Promise<void>;
  /** Closes every connection now. */
  destroyAll(): void;
}

function limit(server: HttpServer): HttpServer {
  server.headersTimeout = headersMsMax;
  server.requestTimeout = requestMsMax;
  server.keepAliveTimeout = keepAliveMsMax;
  return server;
}

/** Creates the front server (not yet listening). */
export function createListener(options: ListenerOptions): Listener {
  const total = options.connectionsMax ?? connectionsMax;
  const perSource = options.connectionsPerSourceMax ?? connectionsPerSourceMax;
  const tls = options.tls;
  const api =
    tls === null
      ? limit(createHttpServer(options.handle))
      : limit(
          createHttpsServer(
            {
              key: tls.key,
              cert: tls.cert,
              ca: tls.ca,
              requestCert: true,
              rejectUnauthorized: false,
              handshakeTimeout: tlsHandshakeMsMax,
            },
            options.handle,
          ),
        );
  api.on('upgrade', options.upgrade);
  // With TLS, a plain connection gets one answer, whatever it asks (see the file comment).
  const problem = problemOf(new TesseraError('ERR_TLS_REQUIRED', 'this node serves its API and its peer endpoint over HTTPS: use https:// (peers: wss://)'));
  const body = JSON.stringify(problem);
  const plain =
    tls === null
      ? null
      : limit(
          createHttpServer((_req, res) => {
            res.writeHead(problem.status, {
              'content-type': 'application/problem+json; charset=utf-8',
              'content-length': Buffer.byteLength(body),
              connection: 'close',
            });
            res.end(body);
          }),
        );
  plain?.on('upgrade', (_req, socket: Duplex) => {
    socket.on('error', () => undefined);
    socket.end(
      `HTTP/1.1 ${problem.status} Bad Request\r\ncontent-type: application/problem+json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
    socket.once('finish', () => socket.destroy());
  });
  const sockets = new Set<Socket>();
  const bySource = new Map<string, number>();
  // No Nagle delay: an answer is one write, and waiting for an ACK that the client delays costs ~40 ms a request.
  const front = createNetServer({ noDelay: true }, (socket) => {
    const source = socket.remoteAddress ?? '';
    const fromSource = bySource.get(source) ?? 0;
    if (sockets.size >= total || fromSource >= perSource) {
      options.log({
        event: 'connection-refused',
        code: 'ERR_CONNECTIONS_EXCEEDED',
        connections: sockets.size,
        fromSource,
        connectionsMax: total,
        connectionsPerSourceMax: perSource,
      });
      socket.destroy();
      return;
    }
    sockets.add(socket);
    bySource.set(source, fromSource + 1);
    socket.once('close', () => {
      sockets.delete(socket);
      const left = (bySource.get(source) ?? 1) - 1;
      if (left === 0) bySource.delete(source);
      else bySource.set(source, left);
    });
    socket.on('error', () => socket.destroy());
    socket.setTimeout(firstByteMsMax, () => socket.destroy());
    socket.once('data', (chunk: Buffer) => {
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(chunk);
      // 0x16 opens a TLS handshake record; a TLS socket reads what was unshifted before its first read.
      const target = plain !== null && chunk[0] !== 0x16 ? plain : api;
      target.emit('connection', socket);
      process.nextTick(() => socket.resume());
    });
  });
  front.on('error', () => undefined);
  return {
    front,
    close: () => new Promise((resolve) => front.close(() => resolve())),
    destroyAll: () => {
      for (const socket of sockets) socket.destroy();
      api.closeAllConnections();
      plain?.closeAllConnections();
    },
  };
}
