// Goal: the example policy the README shows is valid and means what its comments say.
// Method: parse examples/policy.yaml and ask the policy where documents may live.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { factsOf, originTag, parsePolicy } from '@tessera/core';

t.test('examples/policy.yaml parses and places documents as documented', async (t) => {
  const path = new URL('./policy.yaml', import.meta.url);
  const policy = parsePolicy(await readFile(path, 'utf8'), 'examples/policy.yaml');
  const doc = (dataset: string, origin: string, tags: string[] = []) => factsOf(dataset, 'k', [...tags, originTag(origin)]);
  t.same(policy.holders(doc('catalog', 'us-east')), ['eu-central', 'eu-west', 'us-east'], 'catalog: everywhere');
  t.same(policy.holders(doc('profiles', 'eu-central')), ['eu-central', 'eu-west'], 'profiles: home and its jurisdiction');
  t.same(policy.holders(doc('orders', 'eu-west')), ['eu-west', 'us-east'], 'orders: the listed regions');
  t.same(policy.holders(doc('audits', 'us-east')), ['us-east'], 'audits: local');
  t.same(policy.holders(doc('catalog', 'eu-west', ['pii'])), ['eu-central', 'eu-west'], 'pii stays in its jurisdiction');
  t.same(policy.holders(doc('catalog', 'eu-west', ['quarantine'])), ['eu-west'], 'quarantine keeps it home');
  t.same(policy.holders(doc('catalog', 'eu-west', ['quarantine', 'reviewed'])), ['eu-central', 'eu-west', 'us-east'], 'a release rule lets it go');
});
