/**
 * `tessera certs ca|node|show`: the cluster CA and one key and certificate per node, with the node's identity
 * (`tessera://<cluster>/<region>/<node>`) bound in (issue 12 item 1). Keys are written 0600 and never
 * overwritten; certificates 0644. With `node --config`, every node of a cluster config gets its certificate,
 * naming the hosts of its listen and advertise addresses.
 */
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Command } from 'commander';
import { TesseraError } from '@tessera/core';
import { type KeyAndCert, checkPrivateFilePath, createClusterCa, createNodeCertificate, loadClusterConfig, peerIdentity } from '@tessera/server';

/** Writes a certificate (0644) and its key (0600); refuses to replace existing files. */
export async function writeKeyAndCert(dir: string, name: string, pair: KeyAndCert): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    await writeFile(join(dir, `${name}.key`), pair.keyPem, { mode: 0o600, flag: 'wx' });
    await writeFile(join(dir, `${name}.crt`), pair.certPem, { mode: 0o644, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST')
      throw new TesseraError('ERR_OPTION_INVALID', `${join(dir, name)}.key or .crt exists already: remove it to make a new one`);
    throw error;
  }
}

async function readCa(dir: string): Promise<KeyAndCert> {
  // A CA key others may read signs certificates for anyone: refused, as a node refuses such a TLS key.
  try {
    checkPrivateFilePath(join(dir, 'ca.key'), 'CA key');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  try {
    return { certPem: await readFile(join(dir, 'ca.crt'), 'utf8'), keyPem: await readFile(join(dir, 'ca.key'), 'utf8') };
  } catch (error) {
    throw new TesseraError(
      'ERR_OPTION_INVALID',
      `cannot read the CA in ${dir} (ca.crt, ca.key): ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; create it with tessera certs ca`,
    );
  }
}

/** Registers `certs`. */
export function registerCertsCommands(program: Command, print: (line: string) => void): void {
  const certs = program.command('certs').description('create the cluster CA and node certificates (mutual TLS between nodes, HTTPS for the API)');

  certs
    .command('ca')
    .description('create a cluster CA: ca.crt (give it to every node and client) and ca.key (keep it off the nodes)')
    .requiredOption('--cluster <id>', 'the cluster id (as in the cluster config)')
    .option('--dir <path>', 'where to write', 'certs')
    .action(async (options: { cluster: string; dir: string }) => {
      await writeKeyAndCert(options.dir, 'ca', await createClusterCa(options.cluster, Date.now()));
      print(`created ${join(options.dir, 'ca.crt')} and ${join(options.dir, 'ca.key')} (0600) for cluster ${options.cluster}`);
    });

  certs
    .command('node')
    .description('create node keys and certificates signed by the CA in --dir')
    .option('--dir <path>', 'where the CA is and the files go', 'certs')
    .option('--config <file>', 'every node of this cluster config (hosts from listen and advertise)')
    .option('--cluster <id>', 'one node: the cluster id')
    .option('--region <region>', 'one node: its region')
    .option('--node <id>', 'one node: its id')
    .option('--host <host...>', 'DNS names and IP addresses it is reached at', ['localhost', '127.0.0.1'])
    .action(async (options: { dir: string; config?: string; cluster?: string; region?: string; node?: string; host: string[] }) => {
      const ca = await readCa(options.dir);
      const nodes: Array<{ cluster: string; region: string; node: string; hosts: string[] }> = [];
      if (options.config !== undefined) {
        const config = await loadClusterConfig(options.config);
        for (const node of config.nodes)
          nodes.push({
            cluster: config.cluster,
            region: node.region,
            node: node.id,
            hosts: [...new Set([...options.host, node.listen.host, node.advertise.host])],
          });
      } else {
        if (options.cluster === undefined || options.region === undefined || options.node === undefined)
          throw new TesseraError('ERR_OPTION_INVALID', 'give --config, or --cluster, --region and --node');
        nodes.push({ cluster: options.cluster, region: options.region, node: options.node, hosts: options.host });
      }
      for (const one of nodes) {
        await writeKeyAndCert(options.dir, one.node, await createNodeCertificate(ca, one, one.hosts, Date.now()));
        print(
          `created ${join(options.dir, `${one.node}.crt`)} (tessera://${one.cluster}/${one.region}/${one.node}; ${one.hosts.join(', ')}) and its key (0600)`,
        );
      }
    });

  certs
    .command('show')
    .description('print the identity, hosts and validity of a certificate')
    .argument('<cert>')
    .action(async (file: string) => {
      const cert = new X509Certificate(await readFile(file));
      print(
        JSON.stringify(
          {
            identity: cert.ca ? null : peerIdentity(cert),
            ca: cert.ca,
            subject: cert.subject,
            subjectAltName: cert.subjectAltName ?? null,
            validFrom: cert.validFrom,
            validTo: cert.validTo,
          },
          null,
          2,
        ),
      );
    });
}
