/** `tessera serve`: run one region node as a daemon. */
import { type Command, Option } from 'commander';
import { startDaemon } from '@tessera/server';

/** Registers `serve`. */
export function registerServeCommand(program: Command, print: (line: string) => void): void {
  program
    .command('serve')
    .description('run one node of a cluster: HTTP API and replication on the address the config gives it')
    .requiredOption('--config <file>', 'cluster config (YAML)')
    .requiredOption('--node <id>', 'which node of the config this process is')
    // For `tessera dev` and tests: stdin is a pipe from the parent, which closes when the parent dies.
    .addOption(new Option('--stop-with-stdin', 'drain and stop when stdin closes').hideHelp())
    .action(async (options: { config: string; node: string; stopWithStdin?: boolean }) => {
      const daemon = await startDaemon({
        configPath: options.config,
        nodeId: options.node,
        log: (event) => print(JSON.stringify({ time: new Date().toISOString(), ...event })),
      });
      print(JSON.stringify({ time: new Date().toISOString(), node: daemon.node.id, region: daemon.node.region, event: 'ready', url: daemon.url }));
      await new Promise<void>((resolve) => {
        process.once('SIGTERM', resolve);
        process.once('SIGINT', resolve);
        if (options.stopWithStdin) {
          process.stdin.once('end', resolve).once('close', resolve).once('error', resolve);
          process.stdin.resume();
        }
      });
      await daemon.stop();
    });
}
