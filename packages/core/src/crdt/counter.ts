/**
 * `counter`: a PN-counter that can be reset (a causal counter). Each node keeps one entry holding its running
 * increments and decrements under its latest dot; a node's new entry removes its previous ones and carries
 * their sum on. A delete removes the observed entries, so increments concurrent with a delete survive it. A
 * node has two entries at once only when neither saw the other (it purged its copy and wrote again before
 * the copy came back): they count separately, and its next write sums them.
 */
import { type Dot, compareDots } from '../context.js';
import { TesseraError } from '../errors.js';
import { counterAbsMax } from '../limits.js';
import { expectArray, expectDot, expectInt, expectSorted } from '../shape.js';
import { joinEntries } from './entries.js';
import { type CrdtType, type Mutation, type MutationContext } from './type.js';

/** One node's contribution: increments `p` and decrements `n` since its entries were last reset. */
export interface CounterEntry {
  readonly dot: Dot;
  readonly p: number;
  readonly n: number;
}

/** A counter body: entries sorted by dot. */
export type CounterBody = readonly CounterEntry[];

function total(body: CounterBody): number {
  let sum = 0;
  for (const entry of body) sum += entry.p - entry.n;
  return sum;
}

/** Adds `amount` (negative to decrement). Throws `ERR_COUNTER_RANGE` outside the safe-integer range. */
export function counterAdd(body: CounterBody, amount: number, ctx: MutationContext): Mutation<CounterBody> {
  if (!Number.isSafeInteger(amount)) {
    throw new TesseraError('ERR_COUNTER_RANGE', `counter amount ${amount} is not a safe integer`);
  }
  const own = body.filter((entry) => entry.dot[0] === ctx.node);
  let p = 0;
  let n = 0;
  for (const entry of own) {
    p += entry.p;
    n += entry.n;
  }
  if (amount >= 0) p += amount;
  else n -= amount;
  const next = total(body) + amount;
  if (p > counterAbsMax || n > counterAbsMax || Math.abs(next) > counterAbsMax) {
    throw new TesseraError('ERR_COUNTER_RANGE', `counter would leave the safe-integer range (limit ${counterAbsMax}) after adding ${amount}`);
  }
  const dot = ctx.nextDot();
  return { body: [{ dot, p, n }], added: [dot], removed: own.map((entry) => entry.dot) };
}

/** The `counter` CRDT type. */
export const counterType: CrdtType<CounterBody, number> = {
  name: 'counter',
  empty: () => [],
  isEmpty: (body) => body.length === 0,
  join: joinEntries<CounterEntry>,
  value: total,
  dots: (body) => body.map((entry) => entry.dot),
  cleared: () => [],
  conflicts: () => [],
  encode: (body) => body.map((entry) => [entry.dot, entry.p, entry.n]),
  decode: (form) => {
    const entries = expectArray(form, 'counter').map((item, i) => {
      const [dot, p, n] = expectArray(item, `counter[${i}]`, 3, 3);
      return {
        dot: expectDot(dot, `counter[${i}] dot`),
        p: expectInt(p, `counter[${i}] p`, 0, counterAbsMax),
        n: expectInt(n, `counter[${i}] n`, 0, counterAbsMax),
      };
    });
    expectSorted(entries, (x, y) => compareDots(x.dot, y.dot), 'counter');
    return entries;
  },
};
