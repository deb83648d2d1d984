/**
 * The fault schedule of a chaos run: a list of timed actions drawn from the run's seed before the run starts,
 * so that the same seed replays the same faults at the same offsets. Every fault that starts also ends
 * before the fault phase does; the run heals everything again at the end anyway.
 */
import { type Random } from './random.js';

/** One action on the cluster: a link's proxy, or a node's process. */
export type FaultAction =
  | { readonly kind: 'partition'; readonly link: string; readonly on: boolean }
  | { readonly kind: 'blackhole'; readonly link: string; readonly on: boolean }
  | { readonly kind: 'stall'; readonly link: string; readonly direction: 'forward' | 'backward'; readonly on: boolean }
  | { readonly kind: 'latency'; readonly link: string; readonly latencyMs: number; readonly jitterMs: number }
  | { readonly kind: 'bandwidth'; readonly link: string; readonly bytesPerSecond: number | null }
  | { readonly kind: 'reset'; readonly link: string }
  | { readonly kind: 'kill'; readonly node: string }
  | { readonly kind: 'restart'; readonly node: string }
  | { readonly kind: 'pause'; readonly node: string; readonly on: boolean };

export interface ScheduledAction {
  readonly atMs: number;
  readonly action: FaultAction;
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
  pause: 2,
} as const;

/** Bounds of a fault's duration and of the gap between two faults' starts. */
export const faultMsMin = 800;
export const faultMsMax = 6_000;
export const gapMsMin = 300;
export const gapMsMax = 2_500;
/** Faults start after this much of undisturbed workload, and end this long before the fault phase does. */
export const quietStartMs = 1_500;
export const quietEndMs = 1_000;

/** Draws a schedule for `durationMs` over the given links (`a>b`, a dials b) and nodes. */
export function buildSchedule(random: Random, options: { links: readonly string[]; nodes: readonly string[]; durationMs: number; baseLatencyMs: number }): ScheduledAction[] {
  const { links, nodes, durationMs, baseLatencyMs } = options;
  const out: ScheduledAction[] = [];
  /** Until when a (kind, target) is busy: a second fault of the same kind on the same target would end the first early. */
  const busyUntil = new Map<string, number>();
  const free = (key: string, atMs: number) => (busyUntil.get(key) ?? 0) <= atMs;
  // One node at most is down or paused at a time: the workload keeps going in two regions.
  let nodeBusyUntil = 0;
  const endMs = durationMs - quietEndMs;
  for (let atMs = quietStartMs; atMs < endMs - faultMsMin; atMs += random.int(gapMsMin, gapMsMax)) {
    const kind = random.weighted(faultWeights);
    const lengthMs = Math.min(random.int(faultMsMin, faultMsMax), endMs - atMs);
    const untilMs = atMs + lengthMs;
    const link = random.pick(links);
    const node = random.pick(nodes);
    const add = (at: number, action: FaultAction) => out.push({ atMs: at, action });
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
        const own = links.filter((name) => name.split('>').includes(`${node}`));
        if (!own.every((name) => free(`partition:${name}`, atMs))) break;
        for (const name of own) {
          busyUntil.set(`partition:${name}`, untilMs);
          add(atMs, { kind: 'partition', link: name, on: true });
          add(untilMs, { kind: 'partition', link: name, on: false });
        }
        break;
      }
      case 'stall': {
        const direction = random.chance(0.5) ? 'forward' as const : 'backward' as const;
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
        if (nodeBusyUntil > atMs) break;
        nodeBusyUntil = untilMs;
        add(atMs, { kind: 'kill', node });
        add(untilMs, { kind: 'restart', node });
        break;
      case 'pause': {
        // SIGSTOP: the process freezes (a long GC pause, a VM stall, a disk that does not answer).
        if (nodeBusyUntil > atMs) break;
        const pauseUntil = atMs + Math.min(lengthMs, 3_000);
        nodeBusyUntil = pauseUntil;
        add(atMs, { kind: 'pause', node, on: true });
        add(pauseUntil, { kind: 'pause', node, on: false });
        break;
      }
    }
  }
  // Stable by time: actions at the same time keep the order they were drawn in.
  return out.map((entry, i) => ({ entry, i })).sort((a, b) => a.entry.atMs - b.entry.atMs || a.i - b.i).map(({ entry }) => entry);
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
  }
}

export function describeSchedule(schedule: readonly ScheduledAction[]): string[] {
  return schedule.map(({ atMs, action }) => `${(atMs / 1000).toFixed(1).padStart(6)} s  ${describeAction(action)}`);
}

/** How many faults of each kind a schedule starts. */
export function countFaults(schedule: readonly ScheduledAction[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const { action } of schedule) {
    if ('on' in action && !action.on) continue;
    if (action.kind === 'restart' || (action.kind === 'latency' && action.jitterMs === 0) || (action.kind === 'bandwidth' && action.bytesPerSecond === null)) continue;
    out[action.kind] = (out[action.kind] ?? 0) + 1;
  }
  return out;
}
