// Goal: a chaos schedule is what docs/testing.md promises — the same seed gives the same schedule; one region
// always takes writes (never more than two nodes down or paused at once), yet two nodes do go down together;
// every crash is followed by a restart and every fault ends within the fault phase; policy versions rise by
// one, each to one node or to every node; clock offsets stay within their bound.
// Method: schedules of 60 s drawn for 300 seeds, replayed as a timeline.
import t from 'tap';
import { Random } from './chaos/random.js';
import {
  type Omissible,
  buildSchedule,
  buildSettings,
  clockOffsetMsMax,
  countFaults,
  describeSchedule,
  logEntriesMaxChoices,
  nodesDownMax,
  quietEndMs,
} from './chaos/schedule.js';

const nodes = ['eu-west-1', 'eu-central-1', 'us-east-1'];
const links = ['eu-central-1>eu-west-1', 'eu-central-1>us-east-1', 'eu-west-1>us-east-1'];
const durationMs = 60_000;

function draw(seed: number) {
  const random = new Random(seed);
  const settings = buildSettings(random.fork('settings'), nodes);
  return { settings, schedule: buildSchedule(random.fork('schedule'), { links, nodes, durationMs, baseLatencyMs: 10, settings }) };
}

t.test('the same seed gives the same schedule and settings', async (t) => {
  const [a, b] = [draw(42), draw(42)];
  t.same(describeSchedule(a.schedule), describeSchedule(b.schedule));
  t.same(a.settings, b.settings);
  t.not(describeSchedule(draw(43).schedule).join('\n'), describeSchedule(a.schedule).join('\n'));
});

t.test('schedules keep their bounds and reach every kind of fault', async (t) => {
  const totals: Record<string, number> = {};
  let problems = 0;
  const problem = (text: string) => {
    if (++problems <= 10) t.fail(text);
  };
  for (let seed = 1; seed <= 300; seed++) {
    const { settings, schedule } = draw(seed);
    if (!(logEntriesMaxChoices as readonly number[]).includes(settings.logEntriesMax)) problem(`seed ${seed}: log bound ${settings.logEntriesMax}`);
    const down = new Set<string>();
    let version = 1;
    for (const { atMs, action } of schedule) {
      if (atMs < 0 || atMs > durationMs - quietEndMs) problem(`seed ${seed}: an action at ${atMs} ms, outside the fault phase`);
      switch (action.kind) {
        case 'kill':
        case 'pause':
          if (action.kind === 'pause' && !action.on) {
            down.delete(action.node);
            break;
          }
          if (down.has(action.node)) problem(`seed ${seed}: ${action.node} taken down twice at ${atMs} ms`);
          down.add(action.node);
          if (down.size > nodesDownMax) problem(`seed ${seed}: ${down.size} nodes down at ${atMs} ms`);
          break;
        case 'restart':
          if (!down.delete(action.node)) problem(`seed ${seed}: ${action.node} restarted at ${atMs} ms without a crash`);
          break;
        case 'policy':
          if (action.shape.version !== ++version) problem(`seed ${seed}: policy v${action.shape.version} after v${version - 1}`);
          if (action.nodes.length !== 1 && action.nodes.length !== nodes.length) problem(`seed ${seed}: policy to ${action.nodes.length} nodes`);
          break;
        case 'clock':
          if (Math.abs(action.offsetMs) > clockOffsetMsMax) problem(`seed ${seed}: clock offset ${action.offsetMs} ms`);
          break;
        default:
          break;
      }
    }
    if (down.size > 0) problem(`seed ${seed}: ${[...down].join(', ')} still down at the end of the schedule`);
    for (const [kind, n] of Object.entries(countFaults(schedule))) totals[kind] = (totals[kind] ?? 0) + n;
  }
  t.equal(problems, 0, 'no schedule breaks a bound');
  for (const kind of ['partition', 'blackhole', 'stall', 'latency', 'bandwidth', 'reset', 'kill', 'two down', 'pause', 'clock', 'policy']) {
    t.ok((totals[kind] ?? 0) > 0, `${kind}: ${totals[kind] ?? 0} in 300 schedules`);
  }
  t.ok(totals.policy! / 300 >= 4, `policy versions per 60 s schedule: ${(totals.policy! / 300).toFixed(1)}`);
});

t.test('leaving parts out drops exactly them and keeps the rest of the schedule', async (t) => {
  const full = draw(7).schedule;
  const without = (parts: Omissible[]) => {
    const random = new Random(7);
    const set = new Set(parts);
    const settings = buildSettings(random.fork('settings'), nodes, set);
    return { settings, schedule: buildSchedule(random.fork('schedule'), { links, nodes, durationMs, baseLatencyMs: 10, settings, without: set }) };
  };
  const noPolicy = without(['policy']).schedule;
  t.same(describeSchedule(noPolicy), describeSchedule(full.filter(({ action }) => action.kind !== 'policy')), 'without policy: the faults are the same');
  const noClocks = without(['clocks']);
  t.same(Object.values(noClocks.settings.clockOffsetsMs), [0, 0, 0], 'without clocks: no skew');
  t.same(describeSchedule(noClocks.schedule), describeSchedule(full.filter(({ action }) => action.kind !== 'clock')));
  t.same(without(['faults', 'clocks', 'policy']).schedule, [], 'nothing left');
});
