// The dashboard's model: turns a `GET /v1/cluster` snapshot into what the page shows — streams (one per
// direction of each link), link pairs with one state, the banner, the dataset × region matrix. Pure: no DOM.

/** Lag above this (ms) or a backlog above this (entries) makes the banner amber. */
export const lagWarnMs = 1_000;
export const backlogWarnEntries = 10_000;

/** A link state as the page names it: `open`, or down with the reason the node gives. */
export function stateLabel(state) {
  switch (state) {
    case 'open': return 'open';
    case 'backoff': return 'down · retrying';
    case 'connecting': return 'down · connecting';
    case 'handshaking': return 'down · handshaking';
    case 'idle': return 'down · waiting for peer';
    case 'closed': return 'down · closed';
    default: return state === null ? 'unknown' : `down · ${state}`;
  }
}

/** Every stream `from>to` between members, in member order; known when `from` answered. */
export function streamsOf(snapshot) {
  const members = snapshot.members;
  const streams = [];
  for (const from of members) {
    const links = from.reachable && from.status && Array.isArray(from.status.links) ? from.status.links : null;
    for (const to of members) {
      if (to.node === from.node) continue;
      const link = links === null ? undefined : links.find((l) => l.peer === to.node);
      streams.push({
        key: `${from.node}>${to.node}`,
        from: from.node, fromRegion: from.region, to: to.node, toRegion: to.region,
        known: link !== undefined,
        state: link === undefined ? null : link.state,
        up: link !== undefined && link.state === 'open',
        link: link ?? null,
      });
    }
  }
  return streams;
}

/** One entry per pair of members: `open` when every side that answered says open, `down` when one says not. */
export function pairsOf(snapshot, streams) {
  const pairs = [];
  const members = snapshot.members;
  for (let i = 0; i < members.length; i++) {
    for (let j = i + 1; j < members.length; j++) {
      const a = members[i], b = members[j];
      const sides = streams.filter((s) => (s.from === a.node && s.to === b.node) || (s.from === b.node && s.to === a.node));
      const known = sides.filter((s) => s.known);
      const down = known.filter((s) => !s.up);
      const state = known.length === 0 ? 'unknown' : down.length > 0 ? 'down' : 'open';
      const lagMs = known.length === 0 ? null : Math.max(...known.map((s) => s.link.lagMs ?? 0));
      const reason = down.length === 0 ? null : down.map((s) => `${s.from}: ${stateLabel(s.state)}${s.link.lastError ? ` (${s.link.lastError})` : ''}`).join('; ');
      pairs.push({ key: `${a.node}|${b.node}`, a, b, state, lagMs, reason });
    }
  }
  return pairs;
}

/**
 * Per-dataset counts of a member's inspect summary (`GET /v1/inspect/summary`): Map dataset → { documents
 * (live ones: the copies this node holds), quarantined, deleted, bytes }; null without a summary.
 */
export function datasetCounts(summary) {
  if (summary === null || summary === undefined || !Array.isArray(summary.datasets)) return null;
  const out = new Map();
  for (const item of summary.datasets) {
    if (typeof item.dataset !== 'string') continue;
    out.set(item.dataset, { documents: item.live ?? 0, quarantined: item.quarantined ?? 0, deleted: item.deleted ?? 0, bytes: item.bytes ?? 0 });
  }
  return out;
}

/** The dataset × member matrix: rows (datasets, sorted), and a cell per (dataset, node). */
export function matrixOf(snapshot) {
  const byNode = new Map(snapshot.members.map((m) => [m.node, m.reachable ? datasetCounts(m.summary) : null]));
  const datasets = new Set();
  for (const counts of byNode.values()) if (counts !== null) for (const name of counts.keys()) datasets.add(name);
  const anyCounts = [...byNode.values()].some((counts) => counts !== null);
  const rows = [...datasets].sort().map((dataset) => ({
    dataset,
    cells: snapshot.members.map((m) => {
      const counts = byNode.get(m.node);
      if (counts === null) return { node: m.node, region: m.region, known: false, documents: null, quarantined: null };
      const c = counts.get(dataset);
      return {
        node: m.node, region: m.region, known: true, complete: m.summary.scan?.complete !== false,
        documents: c?.documents ?? 0, quarantined: c?.quarantined ?? 0, deleted: c?.deleted ?? 0, bytes: c?.bytes ?? 0,
      };
    }),
  }));
  const ages = snapshot.members.filter((m) => m.reachable && m.summaryAgeMs !== null).map((m) => m.summaryAgeMs);
  return { anyCounts, rows, ageMs: ages.length === 0 ? null : Math.max(...ages) };
}

/** What the banner says: level `ok`, `warn` or `down`, a headline, and details. */
export function bannerOf(snapshot, pairs, streams) {
  const unreachable = snapshot.members.filter((m) => !m.reachable);
  const down = pairs.filter((p) => p.state === 'down');
  const known = streams.filter((s) => s.known);
  const maxLag = known.length === 0 ? null : Math.max(...known.filter((s) => s.up).map((s) => s.link.lagMs ?? 0), 0);
  const backlog = known.reduce((sum, s) => sum + (s.link.backlogEntries ?? 0), 0);
  const versions = new Set(snapshot.members.filter((m) => m.policy && m.policy.enforced).map((m) => m.policy.enforced.version));
  const problems = [];
  if (down.length > 0) problems.push(`${down.length} link${down.length === 1 ? '' : 's'} down: ${down.map((p) => `${p.a.region} ↔ ${p.b.region}`).join(', ')}`);
  if (unreachable.length > 0) problems.push(`unreachable from ${snapshot.viewer.node}: ${unreachable.map((m) => `${m.node} (${m.error})`).join(', ')}`);
  const warnings = [];
  if (maxLag !== null && maxLag > lagWarnMs) warnings.push(`lag up to ${Math.round(maxLag)} ms`);
  if (backlog > backlogWarnEntries) warnings.push(`${backlog} entries waiting`);
  if (versions.size > 1) warnings.push(`policy versions differ: ${[...versions].sort((a, b) => a - b).map((v) => `v${v}`).join(', ')}`);
  const regions = snapshot.members.length;
  const open = pairs.filter((p) => p.state === 'open').length;
  const facts = [
    `${regions - unreachable.length}/${regions} nodes reachable`,
    `${open}/${pairs.length} links open`,
    maxLag === null ? null : `max lag ${Math.round(maxLag)} ms`,
    `backlog ${backlog}`,
    versions.size === 1 ? `policy v${[...versions][0]} everywhere` : null,
  ].filter((f) => f !== null);
  if (problems.length > 0) return { level: 'down', headline: problems.join(' · '), details: [...warnings, ...facts].join(' · ') };
  if (warnings.length > 0) return { level: 'warn', headline: warnings.join(' · '), details: facts.join(' · ') };
  return { level: 'ok', headline: `All ${regions} regions up, all ${pairs.length} links open`, details: facts.join(' · ') };
}
