/**
 * A daemon in a child process for tests that measure it (peer-memory.test.ts): started with the config path and
 * node id in argv, it reports `{ ready, url }` over IPC, answers `'rss'` with its resident set size after a
 * garbage collection when one is exposed, and stops on `'stop'`.
 */
import { startDaemon } from '../../src/daemon.js';

const [configPath, nodeId] = process.argv.slice(2);
const daemon = await startDaemon({ configPath: configPath!, nodeId: nodeId!, log: () => undefined, drainGraceMs: 0 });
process.on('message', (message) => {
  if (message === 'rss') {
    (globalThis as { gc?: () => void }).gc?.();
    process.send!({ rss: process.memoryUsage().rss });
  } else if (message === 'stop') {
    void daemon.stop().then(() => process.exit(0));
  }
});
process.send!({ ready: true, url: daemon.url });
