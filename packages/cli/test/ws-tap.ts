/**
 * Reads the payload bytes of the WebSocket streams a FaultProxy's tap sees. A tap that searches raw TCP chunks
 * for a marker string sees only half the replication traffic: RFC 6455 makes a client mask every frame it
 * sends (XOR with a random key per frame), so everything a dialer sends to its acceptor crosses the wire
 * scrambled. This decoder follows each connection's stream (the proxy numbers them), skips the HTTP upgrade,
 * parses frame headers across chunk boundaries, unmasks payloads and hands them on in order. Nothing is
 * buffered beyond one frame header: payloads are passed on piece by piece as they arrive.
 */

/** Bytes of HTTP upgrade head accepted before a stream is taken as not WebSocket (then passed on raw). */
const upgradeHeadBytesMax = 64 * 1024;

interface StreamState {
  /** `upgrade`: in the HTTP head; `frames`: frame headers and payloads; `raw`: not a WebSocket stream. */
  phase: 'upgrade' | 'frames' | 'raw';
  pending: Buffer;
  /** The frame whose payload is being read: bytes left, its mask key, how far into the payload. */
  frame: { remaining: number; mask: Buffer | null; offset: number } | null;
}

/** Decodes tapped chunks into WebSocket payload pieces, per stream (`${link}:${direction}:${connection}`). */
export class WebSocketTap {
  private readonly streams = new Map<string, StreamState>();

  constructor(private readonly onPayload: (stream: string, bytes: Buffer) => void) {}

  /** Feeds one delivered chunk of `stream`. */
  feed(stream: string, chunk: Buffer): void {
    let state = this.streams.get(stream);
    if (state === undefined) {
      const looksLikeHttp = chunk.subarray(0, 5).toString('latin1') === 'GET /' || chunk.subarray(0, 5).toString('latin1') === 'HTTP/';
      state = { phase: looksLikeHttp ? 'upgrade' : 'raw', pending: Buffer.alloc(0), frame: null };
      this.streams.set(stream, state);
    }
    if (state.phase === 'raw') {
      this.onPayload(stream, chunk);
      return;
    }
    state.pending = state.pending.length === 0 ? chunk : Buffer.concat([state.pending, chunk]);
    for (;;) {
      if (state.phase === 'upgrade') {
        const end = state.pending.indexOf('\r\n\r\n');
        if (end < 0) {
          if (state.pending.length > upgradeHeadBytesMax) {
            state.phase = 'raw';
            this.onPayload(stream, state.pending);
            state.pending = Buffer.alloc(0);
          }
          return;
        }
        state.pending = state.pending.subarray(end + 4);
        state.phase = 'frames';
        continue;
      }
      if (state.frame === null) {
        const header = parseHeader(state.pending);
        if (header === null) return;
        state.pending = state.pending.subarray(header.headerBytes);
        state.frame = { remaining: header.payloadBytes, mask: header.mask, offset: 0 };
        if (header.payloadBytes === 0) {
          state.frame = null;
          continue;
        }
      }
      if (state.pending.length === 0) return;
      const frame = state.frame;
      const take = Math.min(frame.remaining, state.pending.length);
      let piece = state.pending.subarray(0, take);
      if (frame.mask !== null) {
        const unmasked = Buffer.allocUnsafe(take);
        for (let i = 0; i < take; i++) unmasked[i] = piece[i]! ^ frame.mask[(frame.offset + i) & 3]!;
        piece = unmasked;
      }
      this.onPayload(stream, piece);
      frame.offset += take;
      frame.remaining -= take;
      state.pending = state.pending.subarray(take);
      if (frame.remaining === 0) state.frame = null;
    }
  }
}

/** A frame header at the start of `bytes`, or null if it is not all there yet. */
function parseHeader(bytes: Buffer): { headerBytes: number; payloadBytes: number; mask: Buffer | null } | null {
  if (bytes.length < 2) return null;
  const masked = (bytes[1]! & 0x80) !== 0;
  let length = bytes[1]! & 0x7f;
  let at = 2;
  if (length === 126) {
    if (bytes.length < 4) return null;
    length = bytes.readUInt16BE(2);
    at = 4;
  } else if (length === 127) {
    if (bytes.length < 10) return null;
    length = Number(bytes.readBigUInt64BE(2));
    at = 10;
  }
  if (masked) {
    if (bytes.length < at + 4) return null;
    return { headerBytes: at + 4, payloadBytes: length, mask: Buffer.from(bytes.subarray(at, at + 4)) };
  }
  return { headerBytes: at, payloadBytes: length, mask: null };
}
