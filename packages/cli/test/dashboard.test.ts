// Goal: the dashboard a node serves shows the cluster as the nodes report it — every stream's state, every
// node's log head, the policy's denials per stream, the dataset × region matrix of copies and quarantined
// copies — and shows a cut link down within a bound, with the backlog building up behind it.
// Method: three real `tessera serve` processes (harness), every link through a FaultProxy, under the dev
// policy (profiles homed within their jurisdiction, a local dataset, quarantine), so that the matrix differs
// per region. Known writes; Chromium from the npm registry (browser.ts; no system browser) opens the dashboard
// of eu-central-1; the test reads the page's DOM and compares it with each node's /v1/status and with the
// documents each node lists.
// Then the proxy of eu-west-1 ↔ us-east-1 is partitioned (a link eu-central-1 does not use to see the
// others), and the page must show that link down — and only that one — within `linkDownShownMsMax`.
// Screenshots go to packages/cli/test/out/ (ignored by git).
import t from 'tap';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { type Browser, type Page } from 'playwright-core';
import { devPolicyText, type DevNode } from '@tessera/cli';
import { launchBrowser } from './browser.js';
import { api, eventually, linkReport, startTestCluster } from './harness.js';

/** From the partition to the page showing the link down: a reset is seen at once; the page refreshes every 1.5 s. */
const linkDownShownMsMax = 15_000;
/** For the page to agree with the API on a quiet cluster (per-dataset counts are refreshed every 5 s). */
const pageAgreesMsMax = 30_000;
const outDir = fileURLToPath(new URL('./out/', import.meta.url));
const regions = ['eu-west', 'eu-central', 'us-east'];

// Start-up of three daemons, a browser, and a healed dialer's back-off (up to tens of seconds after a long cut)
// exceed the default per-file limit on a loaded 2-core machine.
t.setTimeout(240_000);

/** What the page shows, read from its DOM (a string, so that no transpiler helper leaks into the browser). */
interface PageView {
  readonly refreshes: number;
  readonly banner: { readonly level: string; readonly text: string };
  readonly streams: Record<string, { readonly state: string; readonly text: string; readonly backlog: string; readonly rate: string }>;
  readonly pairs: Record<string, string>;
  readonly lastSeq: Record<string, string>;
  readonly matrix: Record<string, Record<string, { readonly count: string; readonly quarantined: string; readonly text: string }>>;
  readonly denied: Record<string, string>;
  readonly conflicts: number;
}

const readPageScript = `(() => {
  const all = (selector, root = document) => [...root.querySelectorAll(selector)];
  const text = (el) => (el === null ? '' : el.textContent.trim());
  const streams = {};
  for (const row of all('#links tr[data-stream]')) {
    const rate = row.querySelector('[data-field=rate]');
    streams[row.dataset.stream] = {
      state: row.dataset.state, text: text(row.querySelector('[data-field=state] .pill')), backlog: text(row.querySelector('[data-field=backlog]')),
      rate: rate === null ? '' : rate.firstChild.textContent.trim(),
    };
  }
  const pairs = {};
  for (const edge of all('#topology [data-pair]')) pairs[edge.dataset.pair] = edge.dataset.state;
  const lastSeq = {};
  for (const card of all('#regions [data-node]')) lastSeq[card.dataset.node] = text(card.querySelector('[data-field=lastSeq]'));
  const matrix = {};
  for (const row of all('#matrix tr[data-dataset]')) {
    const cells = (matrix[row.dataset.dataset] = {});
    for (const cell of all('td[data-node]', row)) {
      cells[cell.dataset.node] = { count: cell.dataset.count, quarantined: cell.dataset.quarantined ?? '', text: text(cell.querySelector('[data-field=count]')) };
    }
  }
  const denied = {};
  for (const row of all('#violations tr[data-stream]')) denied[row.dataset.stream] = text(row.querySelector('[data-field=denied]'));
  const banner = document.getElementById('banner');
  return {
    refreshes: Number(document.body.dataset.refreshes ?? 0),
    banner: { level: banner.dataset.level ?? '', text: text(banner.querySelector('.headline')) },
    streams, pairs, lastSeq, matrix, denied,
    conflicts: all('#conflicts tr[data-conflict]').length,
  };
})()`;

function readPage(page: Page): Promise<PageView> {
  return page.evaluate(readPageScript) as Promise<PageView>;
}

/** Live documents and quarantined documents of `dataset` on `node`, from its list API. */
async function holdings(node: DevNode, dataset: string): Promise<{ documents: number; quarantined: number }> {
  let documents = 0;
  let quarantined = 0;
  let cursor: string | null = null;
  do {
    const { status, body } = await api(node, 'GET', `/v1/kv/${dataset}?limit=1000${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`);
    if (status !== 200) throw new Error(`list ${dataset} on ${node.id}: ${status}`);
    for (const item of body.items as Array<{ tags?: string[] }>) {
      documents++;
      if (item.tags?.includes('quarantine')) quarantined++;
    }
    cursor = body.cursor;
  } while (cursor !== null);
  return { documents, quarantined };
}

t.test('dashboard: the page shows what the nodes report, and a cut link down within a bound', async (t) => {
  await mkdir(outDir, { recursive: true });
  const cluster = await startTestCluster(t, regions, 20, { policyText: devPolicyText(regions) });
  const byRegion = Object.fromEntries(cluster.nodes.map((node) => [node.region, node])) as Record<string, DevNode>;
  const west = byRegion['eu-west']!,
    central = byRegion['eu-central']!,
    us = byRegion['us-east']!;
  const put = async (at: DevNode, dataset: string, key: string, value: unknown, tags?: string[]) => {
    const answer = await api(at, 'PUT', `/v1/kv/${dataset}/${key}`, { value, ...(tags === undefined ? {} : { tags }) });
    t.equal(answer.status, 200, `PUT ${dataset}/${key} on ${at.region}`);
  };

  // Global catalog (one quarantined document stays in eu-west), profiles within their home jurisdiction, a local dataset.
  for (let i = 0; i < 5; i++) await put(west, 'catalog', `w${i}`, { name: `item ${i}` });
  for (let i = 0; i < 3; i++) await put(us, 'catalog', `u${i}`, { name: `item ${i}` });
  await put(west, 'catalog', 'held', { name: 'under review' }, ['quarantine']);
  await put(west, 'profiles', 'ada', { name: 'Ada' });
  await put(west, 'profiles', 'bo', { name: 'Bo' });
  await put(us, 'profiles', 'cy', { name: 'Cy' });
  await put(central, 'audits', 'a1', 'checked');
  const datasets = ['audits', 'catalog', 'profiles'];
  const expected: Record<string, Record<string, { documents: number; quarantined: number }>> = {
    audits: { 'eu-west-1': { documents: 0, quarantined: 0 }, 'eu-central-1': { documents: 1, quarantined: 0 }, 'us-east-1': { documents: 0, quarantined: 0 } },
    catalog: { 'eu-west-1': { documents: 9, quarantined: 1 }, 'eu-central-1': { documents: 8, quarantined: 0 }, 'us-east-1': { documents: 8, quarantined: 0 } },
    profiles: {
      'eu-west-1': { documents: 2, quarantined: 0 },
      'eu-central-1': { documents: 2, quarantined: 0 },
      'us-east-1': { documents: 1, quarantined: 0 },
    },
  };
  /** Every node's holdings per dataset, from the nodes' own data. */
  const nodesData = async () => {
    const out: Record<string, Record<string, { documents: number; quarantined: number }>> = {};
    for (const dataset of datasets) {
      out[dataset] = {};
      for (const node of cluster.nodes) out[dataset]![node.id] = await holdings(node, dataset);
    }
    return out;
  };
  let data = {};
  const converged = await eventually(async () => {
    data = await nodesData();
    return JSON.stringify(data) === JSON.stringify(expected);
  }, 20_000);
  t.ok(
    converged,
    converged ? 'the writes reached the regions the policy allows' : `not converged: ${JSON.stringify(data)}\n${await linkReport(cluster.nodes)}`,
  );

  const browser: Browser = await launchBrowser();
  t.teardown(() => browser.close());
  // The cluster's CA is not the browser's: trust it for this page only. The page takes its token from the fragment.
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 }, ignoreHTTPSErrors: true });
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(message.text());
  });
  const response = await page.goto(`${central.url}/#token=${cluster.layout.security.token}`);
  t.equal(response?.status(), 200, 'GET / answers the page');
  t.ok(await eventually(async () => (await readPage(page)).refreshes >= 1, 10_000), 'the page renders a cluster view');
  t.equal(await page.title(), 'Tessera dashboard');

  // The page agrees with the API: stream states, log heads, denials and the matrix.
  const mismatches = async (): Promise<string[]> => {
    const view = await readPage(page);
    const problems: string[] = [];
    for (const node of cluster.nodes) {
      const { body: status } = await api(node, 'GET', '/v1/status');
      if (view.lastSeq[node.id] !== status.lastSeq.toLocaleString('en-US'))
        problems.push(`${node.id} log head: page ${view.lastSeq[node.id]}, API ${status.lastSeq}`);
      for (const link of status.links as Array<{ peer: string; state: string; policy: { deniedEntries: number } }>) {
        const stream = view.streams[`${node.id}>${link.peer}`];
        const state = link.state === 'open' ? 'open' : 'down';
        if (stream === undefined || stream.state !== state || (stream.text === 'open') !== (state === 'open')) {
          problems.push(`${node.id}>${link.peer}: page ${JSON.stringify(stream)}, API ${link.state}`);
        }
        if (view.denied[`${node.id}>${link.peer}`] !== String(link.policy.deniedEntries)) {
          problems.push(`${node.id}>${link.peer} denied: page ${view.denied[`${node.id}>${link.peer}`]}, API ${link.policy.deniedEntries}`);
        }
      }
    }
    const nodes = await nodesData();
    for (const dataset of datasets) {
      for (const node of cluster.nodes) {
        const shown = view.matrix[dataset]?.[node.id];
        const held = nodes[dataset]![node.id]!;
        if (
          shown === undefined ||
          shown.count !== String(held.documents) ||
          shown.text !== String(held.documents) ||
          shown.quarantined !== String(held.quarantined)
        ) {
          problems.push(`matrix ${dataset} × ${node.id}: page ${JSON.stringify(shown)}, data ${JSON.stringify(held)}`);
        }
      }
    }
    return problems;
  };
  let problems: string[] = [];
  const agrees = await eventually(async () => (problems = await mismatches()).length === 0, pageAgreesMsMax, 500);
  t.ok(
    agrees,
    agrees ? 'stream states, log heads, denials and the dataset × region matrix match the API and the data' : `the page disagrees:\n${problems.join('\n')}`,
  );
  const healthy = await readPage(page);
  t.equal(healthy.banner.level, 'ok', `the banner is green: ${healthy.banner.text}`);
  t.same(Object.values(healthy.pairs), ['open', 'open', 'open'], 'every link is drawn open');
  t.ok(Number(healthy.denied['eu-west-1>us-east-1']) >= 2, 'the profiles kept out of us-east show as denials');
  t.equal(healthy.matrix.catalog?.['eu-west-1']?.quarantined, '1', 'the quarantined document is counted where it is held');
  // A little traffic, so the charts have something to show; the screenshot is taken while it runs.
  const increments = async (ms: number) => {
    const endMs = Date.now() + ms;
    while (Date.now() < endMs) await Promise.all([west, us].map((node) => api(node, 'POST', '/v1/kv/visits/home/ops', { op: 'increment', amount: 1 })));
  };
  const traffic = increments(6_000);
  let rates: string[] = [];
  const ratesShown = await eventually(
    async () => (rates = Object.values((await readPage(page)).streams).map((s) => s.rate)).some((rate) => rate !== '0/s' && rate !== ''),
    5_000,
    250,
  );
  t.ok(ratesShown, `the page shows the traffic as entries sent per second (${rates.join(', ')})`);
  await new Promise((resolve) => setTimeout(resolve, 4_000));
  await page.screenshot({ path: `${outDir}dashboard-healthy.png`, fullPage: true });
  await traffic;

  // Cut eu-west ↔ us-east; eu-central reaches both through its own links, so it sees both sides.
  const proxy = cluster.layout.proxies.get(`${west.id}>${us.id}`);
  t.ok(proxy, 'the link has a proxy');
  proxy!.partition(true);
  const cut = [`${west.id}>${us.id}`, `${us.id}>${west.id}`];
  let view = healthy;
  const shownDown = await eventually(
    async () => {
      view = await readPage(page);
      return (
        cut.every((key) => view.streams[key]?.state === 'down' && view.streams[key]!.text.startsWith('down')) &&
        view.pairs[`${west.id}|${us.id}`] === 'down' &&
        view.banner.level === 'down'
      );
    },
    linkDownShownMsMax,
    250,
  );
  t.ok(
    shownDown,
    shownDown ? `the cut link is shown down within ${linkDownShownMsMax} ms` : `not shown down: ${JSON.stringify(view)}\n${await linkReport(cluster.nodes)}`,
  );
  t.match(view.banner.text, /links? down: .*(eu-west ↔ us-east|us-east ↔ eu-west)/, 'the banner names the link');

  // Writes in eu-west now wait for the link: the page shows the backlog the node reports.
  for (let i = 0; i < 4; i++) await put(west, 'catalog', `late${i}`, { name: `late ${i}` });
  // Concurrent writes to one field on both sides of the cut: a conflict once it heals.
  await put(west, 'catalog', 'w0', { name: 'from eu-west' });
  await put(us, 'catalog', 'w0', { name: 'from us-east' });
  let backlog = { page: '', api: -1 };
  const backlogShown = await eventually(
    async () => {
      const { body: status } = await api(west, 'GET', '/v1/status');
      const link = (status.links as Array<{ peer: string; backlogEntries: number }>).find((l) => l.peer === us.id)!;
      backlog = { page: (await readPage(page)).streams[`${west.id}>${us.id}`]?.backlog ?? '', api: link.backlogEntries };
      return link.backlogEntries >= 5 && backlog.page === String(link.backlogEntries);
    },
    pageAgreesMsMax,
    250,
  );
  t.ok(backlogShown, `the backlog behind the cut link is shown as the node reports it (${JSON.stringify(backlog)})`);
  // The other links stay as the nodes report them (open, unless something else broke: then the page must say so too).
  const stillAgrees = await eventually(async () => (problems = await mismatches()).length === 0, pageAgreesMsMax, 500);
  t.ok(
    stillAgrees,
    stillAgrees
      ? 'during the cut the page still matches the API and the data'
      : `the page disagrees:\n${problems.join('\n')}\n${await linkReport(cluster.nodes)}`,
  );
  const during = await readPage(page);
  t.same(
    Object.entries(during.streams)
      .filter(([, s]) => s.state === 'down')
      .map(([key]) => key)
      .sort(),
    [...cut].sort(),
    `only the cut link is down: ${JSON.stringify(during.streams)}\n${await linkReport(cluster.nodes)}`,
  );
  await page.screenshot({ path: `${outDir}dashboard-link-down.png`, fullPage: true });

  proxy!.heal();
  const healed = await eventually(
    async () => {
      view = await readPage(page);
      return Object.values(view.streams).every((s) => s.state === 'open') && view.banner.level !== 'down' && view.conflicts > 0;
    },
    60_000,
    500,
  );
  t.ok(
    healed,
    healed
      ? 'after healing every link is shown open again, with the conflict the cut caused'
      : `not healed: ${JSON.stringify(view)}\n${await linkReport(cluster.nodes)}`,
  );
  await page.screenshot({ path: `${outDir}dashboard-healed.png`, fullPage: true });
  t.same(pageErrors, [], 'no script errors on the page');
});
