/** @tessera/cli: the `tessera` command, thin over store, server and HTTP. */
export { createProgram, runCli } from './program.js';
export { startDevCluster, prepareDevCluster, devPolicyText, spawnNode, waitReady, stopChild, seedDemoData, type DevCluster, type DevLayout, type DevNode, type DevOptions } from './commands/dev.js';
export { FaultProxy, regionLocations, wanLatencyMs } from './proxy.js';
