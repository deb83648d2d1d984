// Goal: a peer's frames are untrusted: random and mutated bytes always give a valid frame or ERR_FRAME_INVALID,
// never another exception; valid frames round-trip.
// Method: fast-check over random bytes and over mutations of valid encoded frames.
import t from 'tap';
import fc from 'fast-check';
import { isTesseraError } from '@tessera/core';
import { type Frame, decodeFrame, encodeFrame, newNonce } from '@tessera/sync';

const valid: Frame[] = [
  { t: 'challenge', v: 1, nonce: newNonce() },
  { t: 'hello', v: 1, cluster: 'c', node: 'a1', region: 'eu-west', policy: { version: 3, hash: 'abc' }, nonce: newNonce(), proof: new Uint8Array(32) },
  { t: 'welcome', node: 'b1', region: 'us-east', policy: { version: 3, hash: 'abc' }, proof: new Uint8Array(32) },
  { t: 'refuse', code: 'bad-proof', reason: 'authentication failed' },
  {
    t: 'batch',
    id: 4,
    last: 9,
    entries: [{ seq: 7, dataset: 'users', key: 'u1', origin: 'a1', originSeq: 3, hlc: { ms: 5, c: 1 }, delta: new Uint8Array([1, 2, 3]) }],
  },
  { t: 'ack', id: 4, last: 9, peer: { have: { a1: 3, b1: 9 }, down: ['c1'] } },
  { t: 'ping', ms: 12 },
  { t: 'ping', ms: 13, peer: { have: {}, down: [] } },
];

function decodesOrRefuses(bytes: Uint8Array): boolean {
  try {
    decodeFrame(bytes);
    return true;
  } catch (error) {
    if (isTesseraError(error, 'ERR_FRAME_INVALID')) return false;
    throw error;
  }
}

t.test('valid frames round-trip', async (t) => {
  for (const frame of valid) t.same(decodeFrame(encodeFrame(frame)), frame, frame.t);
});

t.test('random bytes never crash the decoder', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
      decodesOrRefuses(bytes);
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

t.test('mutated valid frames decode or are refused with ERR_FRAME_INVALID', async (t) => {
  let refused = 0;
  fc.assert(
    fc.property(fc.constantFrom(...valid), fc.nat(), fc.integer({ min: 1, max: 255 }), fc.nat(), (frame, at, xor, cut) => {
      const bytes = Buffer.from(encodeFrame(frame));
      bytes[at % bytes.length] ^= xor;
      if (!decodesOrRefuses(bytes.subarray(0, bytes.length - (cut % 4)))) refused++;
    }),
    { numRuns: 2000 },
  );
  t.ok(refused > 0, `${refused} mutants refused`);
});

t.test('out-of-order batch entries and oversize frames are refused', async (t) => {
  const entry = { seq: 7, dataset: 'users', key: 'u1', origin: 'a1', originSeq: 7, hlc: { ms: 5, c: 1 }, delta: new Uint8Array(1) };
  t.throws(() => decodeFrame(encodeFrame({ t: 'batch', id: 1, last: 9, entries: [entry, { ...entry, seq: 6 }] })), { code: 'ERR_FRAME_INVALID' });
  t.throws(() => decodeFrame(encodeFrame({ t: 'batch', id: 1, last: 3, entries: [entry] })), { code: 'ERR_FRAME_INVALID' });
  t.throws(() => decodeFrame(encodeFrame({ t: 'batch', id: 1, last: 9, entries: [{ ...entry, key: '' }] })), { code: 'ERR_FRAME_INVALID' });
  t.throws(() => decodeFrame(new Uint8Array(18 * 1024 * 1024)), { code: 'ERR_FRAME_INVALID' });
  t.throws(() => decodeFrame(encodeFrame({ t: 'ping', ms: 1, peer: { have: { 'Bad Id': 1 }, down: [] } })), { code: 'ERR_FRAME_INVALID' });
});
