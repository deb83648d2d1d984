/** @tessera/cli: the `tessera` command, thin over store, server and HTTP. */
export { createProgram, runCli, cliVersion, type CliContext } from './program.js';
export { startDevCluster, devClusterDir, checkDevPolicy, type DevCluster, type DevOptions } from './commands/dev.js';
export { prepareDevCluster, devPolicyText, spawnNode, waitReady, stopChild, seedDemoData, type DevLayout, type DevNode, type DevShape } from './dev/layout.js';
export { FaultProxy, regionLocations, wanLatencyMs } from './proxy.js';
export { prepareDevSecurity, type DevSecurity } from './dev/security.js';
