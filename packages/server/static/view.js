// Rendering: every section is rebuilt from the model on each refresh. Text goes in through textContent only
// (document keys in conflicts are data, never markup).
import * as fmt from './format.js';
import { stateLabel } from './model.js';
import { streamColor } from './charts.js';

/** Rows shown of the conflicts and of the audit tail (the view carries more; the page stays one screen wide). */
export const conflictRowsMax = 12;
export const auditRowsMax = 16;

/** Creates an element: `props` are attributes (`data-*`, `class`, `title`…); children are nodes or text. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) if (value !== null && value !== undefined && value !== false) el.setAttribute(name, String(value));
  for (const child of children.flat()) if (child !== null && child !== undefined && child !== false) el.append(child instanceof Node ? child : String(child));
  return el;
}

function svg(tag, props = {}, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [name, value] of Object.entries(props)) if (value !== null && value !== undefined) el.setAttribute(name, String(value));
  for (const child of children.flat()) if (child !== null && child !== undefined) el.append(child instanceof Node ? child : String(child));
  return el;
}

function table(target, head, rows, empty) {
  target.replaceChildren(
    h('thead', {}, h('tr', {}, head.map((cell) => (cell instanceof Node ? cell : h('th', {}, cell))))),
    h('tbody', {}, rows.length > 0 ? rows : h('tr', {}, h('td', { class: 'empty', colspan: head.length }, empty))),
  );
}

function pill(level, text, props = {}) {
  return h('span', { class: `pill pill-${level}`, ...props }, text);
}

/** The header line and the banner. */
export function renderHeader(snapshot, banner, refreshMs, error) {
  const viewer = document.getElementById('viewer');
  const updated = document.getElementById('updated');
  const box = document.getElementById('banner');
  if (snapshot !== null) viewer.textContent = `cluster view from ${snapshot.viewer.node} (${snapshot.viewer.region})`;
  if (error !== null) {
    box.className = 'banner banner-down';
    box.replaceChildren(
      h('div', { class: 'headline' }, `This node does not answer: ${error}`),
      h('div', { class: 'details' }, snapshot === null ? 'no data yet' : `showing the view of ${fmt.clock(snapshot.atMs)}`),
    );
    updated.className = 'updated stale';
    return;
  }
  box.className = `banner banner-${banner.level}`;
  box.dataset.level = banner.level;
  box.replaceChildren(h('div', { class: 'headline' }, banner.headline), h('div', { class: 'details' }, banner.details));
  updated.className = 'updated';
  updated.dataset.at = String(snapshot.atMs);
  updated.textContent = `updated ${fmt.clock(snapshot.atMs)} · every ${(refreshMs / 1000).toFixed(1)} s`;
}

/** The regions as a graph: a circle per node, a line per link, green when open, red and dashed when down. */
export function renderTopology(snapshot, pairs) {
  const width = 380, height = 225, cx = width / 2, cy = height / 2 + 2, r = height / 2 - 40;
  const members = snapshot.members;
  const at = new Map(members.map((m, i) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / members.length;
    return [m.node, { x: cx + r * Math.cos(angle) * 1.6, y: cy + r * Math.sin(angle) }];
  }));
  const edges = pairs.map((p) => {
    const a = at.get(p.a.node), b = at.get(p.b.node);
    const mx = (a.x + b.x) / 2, my = (a.y + b.y) / 2;
    const label = p.state === 'open' ? fmt.duration(p.lagMs) : p.state === 'down' ? 'DOWN' : '?';
    return svg('g', { class: `edge edge-${p.state}`, 'data-pair': p.key, 'data-state': p.state },
      svg('title', {}, p.state === 'down' ? `${p.a.node} ↔ ${p.b.node}: ${p.reason}` : `${p.a.node} ↔ ${p.b.node}: ${p.state}`),
      svg('line', { x1: a.x, y1: a.y, x2: b.x, y2: b.y }),
      svg('rect', { x: mx - 28, y: my - 11, width: 56, height: 20, rx: 10 }),
      svg('text', { x: mx, y: my + 4, 'text-anchor': 'middle' }, label));
  });
  const nodes = members.map((m) => {
    const { x, y } = at.get(m.node);
    return svg('g', { class: `vertex ${m.reachable ? 'vertex-up' : 'vertex-down'} ${m.self ? 'vertex-self' : ''}`, 'data-node': m.node },
      svg('circle', { cx: x, cy: y, r: 38 }),
      svg('text', { x, y: y - 2, 'text-anchor': 'middle', class: 'region' }, m.region),
      svg('text', { x, y: y + 12, 'text-anchor': 'middle', class: 'node' }, m.reachable ? m.node : 'unreachable'));
  });
  document.getElementById('topology').replaceChildren(svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': 'links between regions' }, ...edges, ...nodes));
}

/** One card per node: reachability, log head, uptime, policy, open links, backlog. */
export function renderRegions(snapshot, streams) {
  const cards = snapshot.members.map((m) => {
    const out = streams.filter((s) => s.from === m.node && s.known);
    const status = m.status ?? {};
    const open = out.filter((s) => s.up).length;
    const backlog = out.reduce((sum, s) => sum + (s.link.backlogEntries ?? 0), 0);
    const sent = out.reduce((sum, s) => sum + (s.link.rates?.sentEntriesPerSecond ?? 0), 0);
    const received = out.reduce((sum, s) => sum + (s.link.rates?.receivedEntriesPerSecond ?? 0), 0);
    const datasets = Array.isArray(m.summary?.datasets) ? m.summary.datasets : null;
    const documents = datasets === null ? null : datasets.reduce((sum, d) => sum + (d.live ?? 0), 0);
    const quarantined = datasets === null ? null : datasets.reduce((sum, d) => sum + (d.quarantined ?? 0), 0);
    const conflicts = datasets === null ? null : datasets.reduce((sum, d) => sum + (d.conflicts ?? 0), 0);
    const policy = m.policy?.enforced ? `v${m.policy.enforced.version}${m.policy.shadow ? ` (shadow v${m.policy.shadow.version})` : ''}` : m.reachable ? 'none' : '–';
    const fact = (name, value, field, level) => h('div', { class: 'fact' }, h('span', { class: 'k' }, name), h('span', { class: `v ${level ? `text-${level}` : ''}`, 'data-field': field }, value));
    return h('div', { class: `region-card ${m.reachable ? '' : 'region-down'}`, 'data-node': m.node, 'data-reachable': String(m.reachable) },
      h('div', { class: 'region-title' },
        h('span', { class: 'region-name' }, m.region),
        m.reachable ? pill('ok', 'up') : pill('down', 'unreachable'),
        m.self ? h('span', { class: 'self' }, 'this node') : null),
      h('div', { class: 'node-id' }, m.node, ' · ', h('span', { class: 'muted' }, m.url.replace(/^http:\/\//, ''))),
      m.reachable
        ? h('div', { class: 'facts' },
          fact('log head', fmt.count(status.lastSeq), 'lastSeq'),
          fact('links open', `${open}/${snapshot.members.length - 1}`, 'linksOpen', open < snapshot.members.length - 1 ? 'down' : null),
          fact('backlog out', fmt.count(backlog), 'backlog', backlog > 0 ? 'warn' : null),
          fact('policy', policy, 'policy'),
          fact('sent', fmt.rate(sent), 'sent'),
          fact('received', fmt.rate(received), 'received'),
          fact('documents', fmt.count(documents), 'documents'),
          fact('quarantined', fmt.count(quarantined), 'quarantined', quarantined > 0 ? 'warn' : null),
          fact('conflicts', fmt.count(conflicts), 'conflicts', conflicts > 0 ? 'warn' : null),
          fact('audit log', fmt.count(m.auditLength), 'auditLength'),
          fact('uptime', fmt.duration(status.uptimeMs), 'uptime'),
          fact('durability', status.durability ?? '–', 'durability'))
        : h('div', { class: 'region-error' }, m.error ?? 'no answer'),
      m.reachable && m.error ? h('div', { class: 'region-partial', title: m.error }, `partial: ${m.error}`) : null);
  });
  document.getElementById('regions').replaceChildren(...cards);
}

/** The streams table: state, lag, backlog, rates, cadence, round trip, window, lanes, reconnects, last error. */
export function renderLinks(streams, downSince, nowMs) {
  const rows = streams.map((s, i) => {
    const l = s.link;
    const swatch = h('span', { class: 'swatch' });
    swatch.style.background = streamColor(i);
    const name = h('td', { class: 'stream' }, swatch, h('b', {}, s.fromRegion), ' → ', h('b', {}, s.toRegion), h('div', { class: 'muted small' }, `${s.from} → ${s.to}`));
    if (!s.known) {
      return h('tr', { 'data-stream': s.key, 'data-state': 'unknown', class: 'row-unknown' }, name,
        h('td', { 'data-field': 'state' }, pill('unknown', 'unknown')),
        h('td', { colspan: 10, class: 'muted' }, `${s.from} did not answer this node`));
    }
    const since = downSince.get(s.key);
    const stateText = s.up ? 'open' : stateLabel(s.state);
    const lanes = Array.isArray(l.lanes) ? l.lanes : [];
    return h('tr', { 'data-stream': s.key, 'data-state': s.up ? 'open' : 'down', class: s.up ? '' : 'row-down' }, name,
      h('td', { 'data-field': 'state' }, pill(s.up ? 'ok' : 'down', stateText),
        !s.up && since !== undefined && nowMs - since >= 1_000 ? h('div', { class: 'muted small' }, `for ${fmt.duration(nowMs - since)}`) : null,
        s.up && l.catchingUp ? h('div', { class: 'text-warn small' }, 'catching up') : null),
      h('td', { 'data-field': 'lag', class: `num ${l.lagMs > 1000 ? 'text-warn' : ''}` }, s.up ? fmt.duration(l.lagMs) : '–'),
      h('td', { 'data-field': 'backlog', class: `num ${l.backlogEntries > 0 && !s.up ? 'text-down' : ''}` }, fmt.count(l.backlogEntries)),
      h('td', { 'data-field': 'rate', class: 'num' }, fmt.rate(l.rates?.sentEntriesPerSecond), h('div', { class: 'muted small' }, `${fmt.bytes(l.rates?.sentBytesPerSecond)}/s`)),
      h('td', { class: 'num' }, fmt.rate(l.rates?.receivedEntriesPerSecond), h('div', { class: 'muted small' }, `${fmt.bytes(l.rates?.receivedBytesPerSecond)}/s`)),
      h('td', { 'data-field': 'cadence' }, l.cadence ?? '–'),
      h('td', { class: 'num' }, l.rttMs === null ? '–' : fmt.duration(l.rttMs)),
      h('td', { class: 'num' }, `${l.inflightBatches ?? 0}/${l.windowBatches ?? 0}`),
      h('td', {}, lanes.map((lane) => h('span', { class: `lane ${lane.backlogEntries > 0 ? 'lane-busy' : ''}`, title: `priority ${lane.priority}, backlog ${lane.backlogEntries}, lag ${lane.lagMs} ms` }, lane.id))),
      h('td', { class: 'num' }, fmt.count(l.reconnects)),
      h('td', { class: 'error small' }, l.lastError ?? ''));
  });
  table(document.getElementById('links'),
    ['stream', 'state', 'lag', 'backlog', 'sent', 'received', 'cadence', 'rtt', 'window', 'lanes', 'reconn.', 'last error'], rows, 'no peers');
}

/** The dataset × region matrix of document counts, quarantined counts in amber. */
export function renderMatrix(snapshot, matrix) {
  const target = document.getElementById('matrix');
  if (!matrix.anyCounts) {
    table(target, ['dataset', ...snapshot.members.map((m) => m.region)], [], 'no node serves per-dataset counts (GET /v1/inspect/summary)');
    return;
  }
  const head = [h('th', {}, 'dataset'), ...snapshot.members.map((m) => h('th', { class: 'num' }, m.region, h('div', { class: 'muted small' }, m.node)))];
  const rows = matrix.rows.map((row) => h('tr', { 'data-dataset': row.dataset }, h('td', {}, h('b', {}, row.dataset)),
    row.cells.map((cell) => {
      if (!cell.known) return h('td', { class: 'num muted', 'data-node': cell.node, 'data-count': '' }, '?');
      const q = cell.quarantined > 0 ? h('div', { class: 'text-warn small', 'data-field': 'quarantined' }, `${fmt.count(cell.quarantined)} quarantined`) : null;
      return h('td', {
        class: `num ${cell.documents === 0 ? 'zero' : 'held'}`, 'data-node': cell.node, 'data-count': cell.documents, 'data-quarantined': cell.quarantined,
        title: `${cell.node}: ${cell.documents} documents (${fmt.bytes(cell.bytes)}), ${cell.deleted} deleted, ${cell.quarantined} quarantined`,
      }, h('span', { 'data-field': 'count' }, `${cell.complete ? '' : '≥ '}${fmt.count(cell.documents)}`), q);
    })));
  table(target, head, rows, 'no datasets yet');
  const age = document.getElementById('matrix-age');
  age.textContent = matrix.ageMs === null ? '' : `counts from ${fmt.duration(matrix.ageMs)} ago`;
}

/** What the policy did per stream: entries kept back, refused by the receiver, refused here, shadow-denied. */
export function renderViolations(streams) {
  const known = streams.filter((s) => s.known && s.link.policy);
  const cell = (n, field) => h('td', { class: `num ${n > 0 ? 'text-down' : 'zero'}`, 'data-field': field }, fmt.count(n));
  const rows = known.map((s) => {
    const p = s.link.policy;
    return h('tr', { 'data-stream': s.key }, h('td', { class: 'stream' }, h('b', {}, s.fromRegion), ' → ', h('b', {}, s.toRegion)),
      cell(p.deniedEntries, 'denied'), cell(p.rejectedByPeer, 'rejectedByPeer'), cell(p.rejectedHere, 'rejectedHere'), cell(p.shadowDenied, 'shadowDenied'),
      h('td', { class: 'muted small' }, s.link.peerPolicy ? `peer v${s.link.peerPolicy.version}` : ''));
  });
  const totals = known.reduce((t, s) => t + s.link.policy.deniedEntries + s.link.policy.rejectedByPeer + s.link.policy.rejectedHere, 0);
  table(document.getElementById('violations'),
    [h('th', {}, 'stream'), h('th', { class: 'num', title: 'entries the sender kept back: the receiver may not hold them' }, 'denied'),
      h('th', { class: 'num', title: 'entries the receiver refused' }, 'refused by peer'), h('th', { class: 'num', title: 'entries of the peer refused here' }, 'refused here'),
      h('th', { class: 'num', title: 'entries the shadow policy would deny' }, 'shadow-denied'), h('th', {}, '')],
    rows, 'no stream reports policy counts');
  document.getElementById('violations').dataset.total = String(totals);
}

/** The newest conflicts over all nodes: ids and key digests only (the view never carries a key or a value). */
export function renderConflicts(conflicts, nowMs) {
  const rows = conflicts.slice(0, conflictRowsMax).map((c) => h('tr', { 'data-conflict': c.id },
    h('td', { class: 'small nowrap' }, fmt.ago(c.recordedAt.ms, nowMs)),
    h('td', {}, h('b', {}, c.dataset), '/', h('span', { class: 'mono', title: 'key digest' }, c.keyDigest.slice(0, 12)),
      c.pathDepth > 0 ? h('span', { class: 'muted' }, ` · field depth ${c.pathDepth}`) : null),
    h('td', { class: 'small' }, c.kind),
    h('td', { class: 'small' }, c.origin, h('div', { class: 'muted' }, `seen on ${c.seenOn.length}`))));
  table(document.getElementById('conflicts'), ['when', 'document (key digest)', 'kind', 'from'], rows, 'no conflicts recorded');
}

/** The newest audit entries of every region. */
export function renderAudit(entries, nowMs) {
  const levels = { 'send-denied': 'warn', rejected: 'down', purge: 'warn', 'quarantine-hold': 'warn', 'quarantine-release': 'ok', 'policy-activated': 'info', 'policy-stored': 'info' };
  const rows = entries.slice(0, auditRowsMax).map((e) => h('tr', { 'data-audit': `${e.node}#${e.seq}` },
    h('td', { class: 'small nowrap' }, fmt.ago(e.atMs, nowMs)),
    h('td', { class: 'nowrap' }, h('b', {}, e.region), h('span', { class: 'muted small' }, ` #${e.seq}`)),
    h('td', {}, pill(levels[e.kind] ?? 'info', e.kind)),
    h('td', { class: 'small mono details' }, detailsText(e.details))));
  table(document.getElementById('audit'), ['when', 'region', 'kind', 'details'], rows, 'the audit logs are empty');
}

/** An audit entry's details on one line: hashes and digests cut short, nested objects flattened. */
function detailsText(details) {
  const text = Object.entries(details ?? {}).map(([k, v]) => `${k}=${detailValue(v)}`).join('  ');
  return text.length <= 160 ? text : `${text.slice(0, 159)}…`;
}

function detailValue(v) {
  if (typeof v === 'string') return /^[0-9a-f]{20,}$/.test(v) ? `${v.slice(0, 10)}…` : v;
  if (Array.isArray(v)) return v.map(detailValue).join(',');
  if (v !== null && typeof v === 'object') return Object.entries(v).map(([k, x]) => `${k}:${detailValue(x)}`).join(',');
  return String(v);
}
