/**
 * What makes a dev cluster secure by default (issue 12): generated at start, reused on the next start, never
 * committed. A cluster CA and a certificate per node (HTTPS for the API), a tokens file with one admin token
 * (written to `admin.token`, 0600, for the CLI and the dashboard link), and an operator key pair whose public
 * half the nodes trust to sign policies (the private half stays in the dev directory: on a real cluster it
 * lives on the operator's machine only). And a master key (`master.key`, 0600) that seals every node's data
 * directory at rest — made only for a cluster whose data folder does not exist yet (an unsealed directory cannot
 * be sealed in place).
 */
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createMasterKeyFile } from '@tessera/store';
import { type Grant, createClusterCa, createNodeCertificate, newToken, readTokensFile, writeTokensFile } from '@tessera/server';
import { writeKeyAndCert } from '../commands/certs.js';
import { signPolicyFile, writeOperatorKeys } from '../commands/policy.js';

/** The files of a dev cluster's security. */
export interface DevSecurity {
  readonly caFile: string;
  readonly certsDir: string;
  readonly tokensFile: string;
  /** The admin token (every role, every dataset). */
  readonly token: string;
  readonly tokenFile: string;
  readonly operatorKey: string;
  readonly operatorPublicKey: string;
  /** The master key file that seals the nodes' data, or null for a cluster whose data predates it. */
  readonly masterKeyFile: string | null;
}

const adminGrant: Grant = { roles: ['reader', 'writer', 'operator', 'policy-admin'], datasets: ['*'] };

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Creates (or reuses) the CA, node certificates, admin token and operator keys of a dev cluster in `dir`. */
export async function prepareDevSecurity(
  dir: string,
  cluster: string,
  nodes: ReadonlyArray<{ id: string; region: string }>,
  options: { readonly sealed?: boolean } = {},
): Promise<DevSecurity> {
  const certsDir = join(dir, 'certs');
  await mkdir(certsDir, { recursive: true, mode: 0o700 });
  const caFile = join(certsDir, 'ca.crt');
  if (!(await exists(caFile))) await writeKeyAndCert(certsDir, 'ca', await createClusterCa(cluster, Date.now()));
  const ca = { certPem: await readFile(caFile, 'utf8'), keyPem: await readFile(join(certsDir, 'ca.key'), 'utf8') };
  for (const node of nodes) {
    if (await exists(join(certsDir, `${node.id}.crt`))) continue;
    await writeKeyAndCert(
      certsDir,
      node.id,
      await createNodeCertificate(ca, { cluster, region: node.region, node: node.id }, ['127.0.0.1', 'localhost'], Date.now()),
    );
  }
  const tokensFile = join(dir, 'tokens.json');
  const tokenFile = join(dir, 'admin.token');
  let token: string;
  if ((await exists(tokenFile)) && readTokensFile(tokensFile, true).some((record) => record.name === 'admin')) {
    token = (await readFile(tokenFile, 'utf8')).trim();
  } else {
    const created = newToken('admin', adminGrant, Date.now());
    writeTokensFile(tokensFile, [...readTokensFile(tokensFile, true).filter((record) => record.name !== 'admin'), created.record]);
    await writeFile(tokenFile, `${created.token}\n`, { mode: 0o600 });
    token = created.token;
  }
  const operatorKey = join(dir, 'operator.key');
  if (!(await exists(operatorKey))) await writeOperatorKeys(join(dir, 'operator'));
  let masterKeyFile: string | null = join(dir, 'master.key');
  if (!(await exists(masterKeyFile))) {
    if (options.sealed === false || (await exists(join(dir, 'data')))) masterKeyFile = null;
    else await createMasterKeyFile(masterKeyFile);
  }
  return { caFile, certsDir, tokensFile, token, tokenFile, operatorKey, operatorPublicKey: join(dir, 'operator.pub'), masterKeyFile };
}

/** Signs the dev cluster's policy file with its operator key (`<policy>.sig`, as `tessera policy apply` reads it). */
export async function signDevPolicy(security: DevSecurity, policyFile: string, cluster: string): Promise<void> {
  await writeFile(`${policyFile}.sig`, await signPolicyFile(policyFile, security.operatorKey, cluster, undefined));
}
