/** The options, results and fixed settings of a simulation run. */
import { type DocState } from '@tessera/core';
import { type SimTiming } from './node.js';

/** Which faults phase one injects. */
export interface FaultOptions {
  /** Loss, duplication and reordering inside connections, latency spikes. */
  readonly messages: boolean;
  readonly partitions: boolean;
  readonly crashes: boolean;
  /** Crashes that strike in the middle of an operation's storage writes. */
  readonly midOpCrashes: boolean;
  /** Per-node wall clock offsets, and jumps (forward and back) during the run. */
  readonly clocks: boolean;
  readonly policyChanges: boolean;
  /** Tag changes in the workload (quarantine, release, pii, …). */
  readonly tagChanges: boolean;
}

/** Every fault. */
export const allFaults: FaultOptions = {
  messages: true,
  partitions: true,
  crashes: true,
  midOpCrashes: true,
  clocks: true,
  policyChanges: true,
  tagChanges: true,
};
/** No fault (a baseline run). */
export const noFaults: FaultOptions = {
  messages: false,
  partitions: false,
  crashes: false,
  midOpCrashes: false,
  clocks: false,
  policyChanges: false,
  tagChanges: false,
};

/** Options of a run. */
export interface SimulationOptions {
  readonly seed: number;
  /** 3 to 5; drawn from the seed when absent. */
  readonly nodes?: number;
  /** Client operations in phase one. */
  readonly steps?: number;
  readonly faults?: Partial<FaultOptions>;
  /** Simulated ms phase two may take to converge. */
  readonly convergeBoundMs?: number;
  /**
   * The clock the link machinery reads: `monotonic` (what SyncNode uses since the sim found that a wall
   * clock stepping back tripped the sender's assertion) or `wall` (the node's skewed, jumping clock).
   */
  readonly linkClock?: 'monotonic' | 'wall';
  /** Receives a line per notable event (node traces, faults). */
  readonly trace?: (line: string) => void;
  /** How the failure message says to reproduce the run (defaults to the npm script and the test). */
  readonly reproduce?: string;
  /** Hears every document's copies at the end (for debugging a seed: `npm run sim -- --seed S --dump ds/key`). */
  readonly onFinish?: (states: ReadonlyMap<string, ReadonlyMap<string, DocState>>) => void;
}

/** What a run found. */
export interface SimulationResult {
  readonly seed: number;
  readonly nodes: number;
  readonly steps: number;
  readonly ok: boolean;
  readonly failures: readonly string[];
  /** Failure report with the seed and the commands that reproduce the run; empty when ok. */
  readonly report: string;
  readonly reproduce: string;
  /** Simulated ms at the end, and when phase two converged (null: it did not). */
  readonly simulatedMs: number;
  readonly convergedAfterMs: number | null;
  readonly events: number;
  /** A digest of the run (events and final states): equal for equal seeds. */
  readonly digest: string;
  readonly stats: Record<string, number>;
}

export const stepsDefault = 300;
export const convergeBoundMsDefault = 90_000;
/** Mean gap between client operations in phase one. */
export const operationGapMsMean = 40;
/** Events in one run; more means a timer loop. */
export const eventsMax = 2_000_000;
export const wallBaseMs = 1_700_000_000_000;

export const timing: SimTiming = {
  handshakeTimeoutMs: 5_000,
  pingIntervalMs: 2_000,
  silentIntervalsMax: 4,
  ackTimeoutMs: 10_000,
  retentionIntervalMs: 1_000,
  logEntriesMax: 60,
  deniedAuditIntervalMs: 30_000,
};

/** The command lines that reproduce a run. */
export function reproduceCommand(seed: number, options: { steps?: number; nodes?: number; faults?: Partial<FaultOptions> } = {}): string {
  const without = Object.entries(options.faults ?? {})
    .filter(([, on]) => on === false)
    .map(([name]) => name)
    .sort()
    .join(',');
  const extra = `${options.steps === undefined || options.steps === stepsDefault ? '' : ` --steps ${options.steps}`}${options.nodes === undefined ? '' : ` --nodes ${options.nodes}`}${without === '' ? '' : ` --without ${without}`}`;
  const env = `${options.steps === undefined || options.steps === stepsDefault ? '' : ` SIM_STEPS=${options.steps}`}${options.nodes === undefined ? '' : ` SIM_NODES=${options.nodes}`}${without === '' ? '' : ` SIM_WITHOUT=${without}`}`;
  return `npm run sim -- --seed ${seed}${extra}   (or: SIM_SEED=${seed}${env} npx tap packages/sim/test/sim.test.ts)`;
}
