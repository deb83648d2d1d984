// The dashboard's loop: fetch this node's cluster view, update the model, render, every `refreshMs`.
import { Chart, History } from './charts.js';
import * as fmt from './format.js';
import { bannerOf, matrixOf, pairsOf, streamsOf } from './model.js';
import * as view from './view.js';

/** How often the page asks for a new view (`?refresh=<ms>` changes it, within bounds). */
const refreshMs = Math.min(60_000, Math.max(500, Number(new URLSearchParams(location.search).get('refresh')) || 1_500));
/** A view that takes longer than this counts as a failure of this node. */
const fetchTimeoutMs = 8_000;

const series = new History();
const lagChart = new Chart(document.getElementById('chart-lag'), { title: '', field: 'lag', unit: 'lag', format: fmt.duration });
const rateChart = new Chart(document.getElementById('chart-rate'), { title: '', field: 'rate', unit: 'entries/s', format: fmt.rate });
/** When the page first saw each stream down (cleared when it is open again). */
const downSince = new Map();
let last = null;

/**
 * The operator token the view needs: from the `#token=` fragment (`tessera dev` prints such a link; browsers
 * never send fragments to the server), kept in this tab's session storage only, and removed from the address bar.
 */
function token() {
  const fragment = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fragment !== null) {
    sessionStorage.setItem('tessera-token', fragment);
    history.replaceState(null, '', location.pathname + location.search);
  }
  return sessionStorage.getItem('tessera-token');
}

async function refresh() {
  let snapshot;
  try {
    const bearer = token();
    if (bearer === null) throw new Error('this dashboard needs an operator token: open it as /#token=<token> (tessera token create --role operator)');
    const response = await fetch('/v1/cluster', { signal: AbortSignal.timeout(fetchTimeoutMs), headers: { accept: 'application/json', authorization: `Bearer ${bearer}` } });
    if (response.status === 401) sessionStorage.removeItem('tessera-token');
    if (!response.ok) throw new Error(`HTTP ${response.status}${response.status === 401 ? ': the token is unknown or revoked' : response.status === 403 ? ': the token lacks the operator role' : ''}`);
    snapshot = await response.json();
  } catch (error) {
    view.renderHeader(last, null, refreshMs, error.name === 'TimeoutError' ? `no answer within ${fetchTimeoutMs / 1000} s` : error.message);
    return;
  }
  last = snapshot;
  const nowMs = snapshot.atMs;
  const streams = streamsOf(snapshot);
  const pairs = pairsOf(snapshot, streams);
  for (const s of streams) {
    if (s.known && !s.up) {
      if (!downSince.has(s.key)) downSince.set(s.key, nowMs);
    } else if (s.up) {
      downSince.delete(s.key);
    }
  }
  series.push(nowMs, streams.map((s) => s.key), new Map(streams.filter((s) => s.up).map((s) => [s.key, {
    lagMs: s.link.lagMs ?? 0, entriesPerSecond: s.link.rates?.sentEntriesPerSecond ?? 0,
  }])));
  view.renderHeader(snapshot, bannerOf(snapshot, pairs, streams), refreshMs, null);
  view.renderTopology(snapshot, pairs);
  view.renderRegions(snapshot, streams);
  view.renderLinks(streams, downSince, nowMs);
  view.renderMatrix(snapshot, matrixOf(snapshot));
  view.renderViolations(streams);
  view.renderConflicts(snapshot.conflicts, nowMs);
  view.renderAudit(snapshot.audit, nowMs);
  lagChart.update(series, streams);
  rateChart.update(series, streams);
  document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes ?? 0) + 1);
}

async function loop() {
  const startedMs = performance.now();
  try {
    await refresh();
  } catch (error) {
    // A rendering bug must not stop the loop; it shows in the console.
    console.error(error);
  }
  setTimeout(loop, Math.max(100, refreshMs - (performance.now() - startedMs)));
}

loop();
