/**
 * The fault schedule of a chaos run: a list of timed actions drawn from the run's seed before the run starts,
 * so that the same seed replays the same faults, policy versions and clock jumps at the same offsets. Every
 * network or process fault that starts also ends before the fault phase does (the run heals everything again
 * at the end anyway); clock offsets and policy versions stay as the schedule leaves them.
 */
import { type ChaosRegion, chaosRegions } from './model.js';
import { type PolicyShape, basePolicyShape, describeShape, nextPolicyShape } from './policy.js';
import { type Random } from './random.js';

/** One action on the cluster: a link's proxy, a node's process or clock, or a policy version to install. */
export type FaultAction =
  | { readonly kind: 'partition'; readonly link: string; readonly on: boolean }
  | { readonly kind: 'blackhole'; readonly link: string; readonly on: boolean }
  | { readonly kind: 'stall'; readonly link: string; readonly direction: 'forward' | 'backward'; readonly on: boolean }
  | { readonly kind: 'latency'; readonly link: string; readonly latencyMs: number; readonly jitterMs: number }
  | { readonly kind: 'bandwidth'; readonly link: string; readonly bytesPerSecond: number | null }
  | { readonly kind: 'reset'; readonly link: string }
  | { readonly kind: 'kill'; readonly node: string }
  | { readonly kind: 'restart'; readonly node: string }
  | { readonly kind: 'pause'; readonly node: string; readonly on: boolean }
  /** Sets the node's wall clock to real time plus `offsetMs` (a jump from its previous offset). */
  | { readonly kind: 'clock'; readonly node: string; readonly offsetMs: number }
  /** Installs `shape` with `POST /v1/policy` (mode enforce) on each of `nodes` in turn; the cluster spreads it. */
  | { readonly kind: 'policy'; readonly shape: PolicyShape; readonly nodes: readonly string[] };

export interface ScheduledAction {
  readonly atMs: number;
  readonly action: FaultAction;
}

/**
 * Parts of a run that can be left out, to narrow down what a failing seed needs (`npm run chaos -- --without
 * policy,clocks`): network and process faults, clock skew and jumps, policy versions, and the workload's
 * families that move placement or race (`tags`: the tagged family and tag changes of quarantine and pii
 * documents; `race`; `retype`). CI leaves nothing out. What remains draws from the same streams as before.
 */
export const omissible = ['faults', 'clocks', 'policy', 'tags', 'race', 'retype'] as const;
export type Omissible = (typeof omissible)[number];

/** Settings of a run drawn from its seed before it starts. */
export interface RunSettings {
  /** The daemons' delta-log bound: small, so that a lagging peer falls behind the log and is caught up from states. */
  readonly logEntriesMax: number;
  readonly retentionIntervalMs: number;
  /** Each node's wall-clock offset at start. */
  readonly clockOffsetsMs: Readonly<Record<string, number>>;
}

/** Kinds of faults and how often each is drawn. */
export const faultWeights = {
  partition: 3,
  isolate: 1,
  blackhole: 2,
  stall: 2,
  latency: 2,
  bandwidth: 2,
  reset: 2,
  kill: 3,
  killTwo: 1,
  pause: 2,
  clock: 1,
} as const;

/** Bounds of a fault's duration and of the gap between two faults' starts. */
export const faultMsMin = 800;
export const faultMsMax = 6_000;
export const gapMsMin = 300;
export const gapMsMax = 2_500;
/** Faults start after this much of undisturbed workload, and end this long before the fault phase does. */
export const quietStartMs = 1_500;
export const quietEndMs = 1_000;
/** Nodes down or paused at once, at most: one region always takes writes. */
export const nodesDownMax = 2;
/** A restarted node takes about this long to answer again: its downtime counts this much longer. */
export const restartMsAllowance = 2_000;
/** A SIGSTOP lasts at most this long. */
export const pauseMsMax = 3_000;
/** Policy versions: the first after this long, then one every so often. */
export const policyFirstMs = 3_000;
export const policyGapMsMin = 4_000;
export const policyGapMsMax = 12_000;
/** Policy installs go to one node (the cluster spreads them) or to every node in turn, as often as each other. */
export const policyEveryNodeProbability = 0.4;
/** Clock offsets at start and after a jump lie within ± this; a jump moves a clock by at most `clockJumpMsMax`. */
export const clockOffsetMsMax = 90_000;
export const clockJumpMsMax = 60_000;
/**
 * The log bounds a run draws from (entries), and the retention interval. Every node logs what it receives too,
 * some 150–300 entries a second under the workload: a peer cut off for a second falls behind even 200.
 */
export const logEntriesMaxChoices = [20, 50, 200] as const;
export const retentionIntervalMs = 500;

/** Draws the settings of a run. */
export function buildSettings(random: Random, nodes: readonly string[], without: ReadonlySet<Omissible> = new Set()): RunSettings {
  // One node keeps the true time, so that skew is relative; the others start up to ±30 s off.
  const anchor = random.pick(nodes);
  const clockOffsetsMs = Object.fromEntries(nodes.map((node) => [node, node === anchor ? 0 : random.int(-30_000, 30_000)]));
  if (without.has('clocks')) for (const node of nodes) clockOffsetsMs[node] = 0;
  return { logEntriesMax: random.pick(logEntriesMaxChoices), retentionIntervalMs, clockOffsetsMs };
}

/** Draws a schedule for `durationMs` over the given links (`a>b`, a dials b) and nodes. */
export function buildSchedule(
  random: Random,
  options: {
    links: readonly string[];
    nodes: readonly string[];
    durationMs: number;
    baseLatencyMs: number;
    settings: RunSettings;
    without?: ReadonlySet<Omissible>;
  },
): ScheduledAction[] {
  const { links, nodes, durationMs, baseLatencyMs } = options;
  const without = options.without ?? new Set<Omissible>();
  const out: ScheduledAction[] = [];
  // Left-out kinds are still drawn, and dropped here, so that the rest of the schedule stays the same.
  const add = (at: number, action: FaultAction) => {
    const part: Omissible = action.kind === 'clock' ? 'clocks' : action.kind === 'policy' ? 'policy' : 'faults';
    if (!without.has(part)) out.push({ atMs: at, action });
  };
  /** Until when a (kind, target) is busy: a second fault of the same kind on the same target would end the first early. */
  const busyUntil = new Map<string, number>();
  const free = (key: string, atMs: number) => (busyUntil.get(key) ?? 0) <= atMs;
  /** When each node is down or paused, to keep at most `nodesDownMax` at once and never one node twice. */
  const downs: Array<{ node: string; fromMs: number; untilMs: number }> = [];
  const canTakeDown = (node: string, fromMs: number, untilMs: number) => {
    const overlapping = downs.filter((down) => down.fromMs < untilMs + restartMsAllowance && fromMs < down.untilMs + restartMsAllowance);
    return overlapping.every((down) => down.node !== node) && new Set(overlapping.map((down) => down.node)).size < nodesDownMax;
  };
  const clocks = new Map(Object.entries(options.settings.clockOffsetsMs));
  const endMs = durationMs - quietEndMs;
  for (let atMs = quietStartMs; atMs < endMs - faultMsMin; atMs += random.int(gapMsMin, gapMsMax)) {
    const kind = random.weighted(faultWeights);
    const lengthMs = Math.min(random.int(faultMsMin, faultMsMax), endMs - atMs);
    const untilMs = atMs + lengthMs;
    const link = random.pick(links);
    const node = random.pick(nodes);
    switch (kind) {
      case 'partition':
      case 'blackhole':
        if (!free(`${kind}:${link}`, atMs)) break;
        busyUntil.set(`${kind}:${link}`, untilMs);
        add(atMs, { kind, link, on: true });
        add(untilMs, { kind, link, on: false });
        break;
      case 'isolate': {
        // Every link of one node partitioned at once: its region is cut off.
        const own = links.filter((name) => name.split('>').includes(node));
        if (!own.every((name) => free(`partition:${name}`, atMs))) break;
        for (const name of own) {
          busyUntil.set(`partition:${name}`, untilMs);
          add(atMs, { kind: 'partition', link: name, on: true });
          add(untilMs, { kind: 'partition', link: name, on: false });
        }
        break;
      }
      case 'stall': {
        const direction = random.chance(0.5) ? ('forward' as const) : ('backward' as const);
        if (!free(`stall:${link}:${direction}`, atMs)) break;
        busyUntil.set(`stall:${link}:${direction}`, untilMs);
        add(atMs, { kind: 'stall', link, direction, on: true });
        add(untilMs, { kind: 'stall', link, direction, on: false });
        break;
      }
      case 'latency': {
        if (!free(`latency:${link}`, atMs)) break;
        busyUntil.set(`latency:${link}`, untilMs);
        // A spike, or the usual latency with heavy jitter.
        const spike = random.chance(0.5);
        add(atMs, { kind: 'latency', link, latencyMs: spike ? random.int(150, 800) : baseLatencyMs, jitterMs: random.int(20, 300) });
        add(untilMs, { kind: 'latency', link, latencyMs: baseLatencyMs, jitterMs: 0 });
        break;
      }
      case 'bandwidth':
        if (!free(`bandwidth:${link}`, atMs)) break;
        busyUntil.set(`bandwidth:${link}`, untilMs);
        add(atMs, { kind: 'bandwidth', link, bytesPerSecond: random.int(2, 64) * 1024 });
        add(untilMs, { kind: 'bandwidth', link, bytesPerSecond: null });
        break;
      case 'reset':
        add(atMs, { kind: 'reset', link });
        break;
      case 'kill':
        if (!canTakeDown(node, atMs, untilMs)) break;
        downs.push({ node, fromMs: atMs, untilMs });
        add(atMs, { kind: 'kill', node });
        add(untilMs, { kind: 'restart', node });
        break;
      case 'killTwo': {
        // Two nodes down at once: the second dies before the first is back, and comes back at its own time.
        const other = random.pick(nodes.filter((candidate) => candidate !== node));
        const secondAtMs = atMs + random.int(0, Math.floor(lengthMs / 2));
        const secondUntilMs = Math.min(endMs, secondAtMs + random.int(faultMsMin, faultMsMax));
        if (!canTakeDown(node, atMs, untilMs) || !canTakeDown(other, secondAtMs, secondUntilMs)) break;
        const both = [
          { node, fromMs: atMs, untilMs },
          { node: other, fromMs: secondAtMs, untilMs: secondUntilMs },
        ];
        // Checked together: the two must not overlap a third node's downtime.
        if (
          downs.some(
            (down) =>
              down.node !== node &&
              down.node !== other &&
              both.some((b) => down.fromMs < b.untilMs + restartMsAllowance && b.fromMs < down.untilMs + restartMsAllowance),
          )
        )
          break;
        downs.push(...both);
        add(atMs, { kind: 'kill', node });
        add(secondAtMs, { kind: 'kill', node: other });
        add(untilMs, { kind: 'restart', node });
        add(secondUntilMs, { kind: 'restart', node: other });
        break;
      }
      case 'pause': {
        // SIGSTOP: the process freezes (a long GC pause, a VM stall, a disk that does not answer).
        const pauseUntil = atMs + Math.min(lengthMs, pauseMsMax);
        if (!canTakeDown(node, atMs, pauseUntil)) break;
        downs.push({ node, fromMs: atMs, untilMs: pauseUntil });
        add(atMs, { kind: 'pause', node, on: true });
        add(pauseUntil, { kind: 'pause', node, on: false });
        break;
      }
      case 'clock': {
        // A jump, forward or back, that keeps the offset within its bound (an NTP step, a VM resumed).
        const from = clocks.get(node) ?? 0;
        const offsetMs = Math.max(-clockOffsetMsMax, Math.min(clockOffsetMsMax, from + random.int(-clockJumpMsMax, clockJumpMsMax)));
        clocks.set(node, offsetMs);
        add(atMs, { kind: 'clock', node, offsetMs });
        break;
      }
    }
  }
  // Policy versions, drawn from their own stream so that adding a fault kind does not change them.
  const policyRandom = random.fork('policy');
  let shape = basePolicyShape();
  for (let atMs = policyFirstMs; atMs < endMs - faultMsMin; atMs += policyRandom.int(policyGapMsMin, policyGapMsMax)) {
    shape = nextPolicyShape(shape, policyRandom);
    const order = [...nodes];
    for (let i = order.length - 1; i > 0; i--) {
      const j = policyRandom.int(0, i);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const targets = policyRandom.chance(policyEveryNodeProbability) ? order : [order[0]!];
    add(atMs, { kind: 'policy', shape, nodes: targets });
  }
  // Stable by time: actions at the same time keep the order they were drawn in.
  return out
    .map((entry, i) => ({ entry, i }))
    .sort((a, b) => a.entry.atMs - b.entry.atMs || a.i - b.i)
    .map(({ entry }) => entry);
}

/** One line per action, for the report and the failure message. */
export function describeAction(action: FaultAction): string {
  switch (action.kind) {
    case 'partition':
    case 'blackhole':
      return `${action.kind} ${action.link} ${action.on ? 'on' : 'off'}`;
    case 'stall':
      return `stall ${action.link} ${action.direction} ${action.on ? 'on' : 'off'}`;
    case 'latency':
      return `latency ${action.link} ${action.latencyMs} ms ± ${action.jitterMs} ms`;
    case 'bandwidth':
      return `bandwidth ${action.link} ${action.bytesPerSecond === null ? 'unlimited' : `${Math.round(action.bytesPerSecond / 1024)} KiB/s`}`;
    case 'reset':
      return `reset ${action.link}`;
    case 'kill':
      return `kill -9 ${action.node}`;
    case 'restart':
      return `restart ${action.node}`;
    case 'pause':
      return `${action.on ? 'SIGSTOP' : 'SIGCONT'} ${action.node}`;
    case 'clock':
      return `clock ${action.node} ${formatOffset(action.offsetMs)}`;
    case 'policy':
      return `policy ${describeShape(action.shape)} → ${action.nodes.join(', then ')}`;
  }
}

/** `+12.3 s` */
export function formatOffset(offsetMs: number): string {
  return `${offsetMs >= 0 ? '+' : '−'}${(Math.abs(offsetMs) / 1000).toFixed(1)} s`;
}

export function describeSchedule(schedule: readonly ScheduledAction[]): string[] {
  return schedule.map(({ atMs, action }) => `${(atMs / 1000).toFixed(1).padStart(6)} s  ${describeAction(action)}`);
}

/** How many faults of each kind a schedule starts (two nodes down at once counts as `two down` too). */
export function countFaults(schedule: readonly ScheduledAction[]): Record<string, number> {
  const out: Record<string, number> = {};
  const down = new Set<string>();
  for (const { action } of schedule) {
    if (action.kind === 'kill') {
      down.add(action.node);
      if (down.size >= 2) out['two down'] = (out['two down'] ?? 0) + 1;
    }
    if (action.kind === 'restart') down.delete(action.node);
    if ('on' in action && !action.on) continue;
    if (action.kind === 'restart' || (action.kind === 'latency' && action.jitterMs === 0) || (action.kind === 'bandwidth' && action.bytesPerSecond === null))
      continue;
    out[action.kind] = (out[action.kind] ?? 0) + 1;
  }
  return out;
}

/** The region of a chaos node id (`eu-west-1` → `eu-west`). */
export function regionOfNode(node: string): ChaosRegion {
  const region = node.replace(/-\d+$/, '');
  if (!(chaosRegions as readonly string[]).includes(region)) throw new Error(`${node} is not a node of a chaos region`);
  return region as ChaosRegion;
}
