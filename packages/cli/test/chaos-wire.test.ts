// Goal: the chaos taps attribute each marker they see to the right receiving region, sending node and send
// time — through WebSocket masking, markers split across chunks, and both directions of a link — and record a
// marker again only when its sender may enforce a newer policy version.
// Method: WebSocket streams built by hand (an upgrade, then frames, masked from the dialer) fed to a
// WireScanner as a proxy's onData would, with a fixed clock.
import t from 'tap';
import { WireScanner } from './chaos/wire.js';

/** One WebSocket binary frame; masked as a dialer sends it. */
function frame(payload: Buffer, masked: boolean): Buffer {
  const header = Buffer.from([0x82, (masked ? 0x80 : 0) | payload.length]);
  if (!masked) return Buffer.concat([header, payload]);
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  return Buffer.concat([header, mask, Buffer.from(payload.map((byte, i) => byte ^ mask[i & 3]!))]);
}

t.test('markers are attributed to the receiving region, the sender and the time it sent them', async (t) => {
  let nowMs = 10_000;
  const versions = new Map<string, number>([
    ['eu-central-1', 1],
    ['eu-west-1', 1],
  ]);
  const scanner = new WireScanner(
    () => nowMs,
    (node) => versions.get(node)!,
  );
  const link = 'eu-central-1>eu-west-1';
  // The dialer (eu-central-1) sends forward, masked; the marker is cut in two chunks.
  const forward = Buffer.concat([Buffer.from('GET /v1/replicate HTTP/1.1\r\nUpgrade: websocket\r\n\r\n'), frame(Buffer.from('xx{"m":"wv-c3-41."}yy'), true)]);
  const cut = forward.length - 8;
  scanner.onData(link, 'forward', forward.subarray(0, cut), 1, 250);
  scanner.onData(link, 'forward', forward.subarray(cut), 1, 250);
  // The acceptor (eu-west-1) answers backward, unmasked.
  scanner.onData(link, 'backward', Buffer.concat([Buffer.from('HTTP/1.1 101 Switching Protocols\r\n\r\n'), frame(Buffer.from('..wv-c0-7.'), false)]), 1, 40);
  t.same(scanner.events, [
    { marker: 'wv-c3-41.', region: 'eu-west', from: 'eu-central-1', link, sentAtMs: 9_750 },
    { marker: 'wv-c0-7.', region: 'eu-central', from: 'eu-west-1', link, sentAtMs: 9_960 },
  ]);
  // The same marker again: not recorded until its sender is seen on a newer version.
  nowMs = 12_000;
  scanner.onData(link, 'backward', frame(Buffer.from('wv-c0-7.'), false), 1, 0);
  t.equal(scanner.events.length, 2, 'a repeated sighting under the same version is not recorded again');
  versions.set('eu-west-1', 2);
  scanner.onData(link, 'backward', frame(Buffer.from('wv-c0-7.'), false), 1, 0);
  t.same(
    scanner.events[2],
    { marker: 'wv-c0-7.', region: 'eu-central', from: 'eu-west-1', link, sentAtMs: 12_000 },
    'recorded again once its sender may enforce a newer version',
  );
  t.ok(scanner.bytesScanned > 0);
});
