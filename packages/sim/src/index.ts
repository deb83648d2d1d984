/** @tessera/sim: the deterministic simulation — real core, store and link state machines over a seeded network and clock. */
export {
  runSimulation,
  reproduceCommand,
  allFaults,
  noFaults,
  stepsDefault,
  convergeBoundMsDefault,
  type FaultOptions,
  type SimulationOptions,
  type SimulationResult,
} from './simulation.js';
export { Random } from './random.js';
export { EventQueue } from './queue.js';
export { SimNetwork } from './network.js';
export { SimNode } from './node.js';
export { Checker, allDocs } from './checks.js';
