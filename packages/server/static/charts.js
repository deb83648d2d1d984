// Live charts (uPlot): one line per stream, the last `historyPointsMax` samples kept in the page.
import uPlot from './uPlot.esm.js';
import * as fmt from './format.js';

/** Samples kept per series (at one refresh every 1.5 s, about seven minutes). */
export const historyPointsMax = 300;

const palette = ['#0969da', '#cf222e', '#1a7f37', '#8250df', '#bc4c00', '#0a7d8c', '#bf3989', '#6e7781', '#9a6700', '#1f6feb', '#116329', '#a40e26'];

/** The color of the i-th stream, shared by the charts and the links table. */
export function streamColor(i) {
  return palette[i % palette.length];
}

/** The samples behind the charts: time, and per stream its lag and its send rate. */
export class History {
  constructor() {
    this.times = [];
    this.series = new Map();
  }

  /** Appends one sample; `values` maps stream key → { lagMs, entriesPerSecond } (null where unknown or down). */
  push(atMs, keys, values) {
    this.times.push(atMs / 1000);
    for (const key of keys) {
      if (!this.series.has(key)) this.series.set(key, { lag: this.times.slice(1).map(() => null), rate: this.times.slice(1).map(() => null) });
      const v = values.get(key);
      const s = this.series.get(key);
      s.lag.push(v ? v.lagMs : null);
      s.rate.push(v ? v.entriesPerSecond : null);
    }
    if (this.times.length > historyPointsMax) {
      this.times.shift();
      for (const s of this.series.values()) {
        s.lag.shift();
        s.rate.shift();
      }
    }
  }

  /** uPlot data for `field` ('lag' or 'rate') of `keys`. */
  data(field, keys) {
    return [this.times.slice(), ...keys.map((key) => (this.series.get(key)?.[field] ?? []).slice())];
  }
}

/** One uPlot chart of one field for a set of streams; rebuilt when the set of streams changes. */
export class Chart {
  constructor(target, { title, field, unit, format }) {
    this.target = target;
    this.title = title;
    this.field = field;
    this.unit = unit;
    this.format = format;
    this.plot = null;
    this.keys = '';
    window.addEventListener('resize', () => this.plot?.setSize(this.size()));
  }

  size() {
    return { width: Math.max(320, this.target.clientWidth - 8), height: 220 };
  }

  update(history, streams) {
    const keys = streams.map((s) => s.key);
    if (this.plot === null || this.keys !== keys.join(',')) {
      this.plot?.destroy();
      this.keys = keys.join(',');
      this.plot = new uPlot({
        ...this.size(),
        title: this.title,
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(max * 1.1, this.field === 'lag' ? 50 : 5)] } },
        series: [
          { value: (u, v) => (v === null ? '–' : fmt.clock(v * 1000)) },
          ...streams.map((s, i) => ({
            label: `${s.fromRegion} → ${s.toRegion}`,
            stroke: streamColor(i),
            width: 2,
            spanGaps: false,
            value: (u, v) => (v === null || v === undefined ? '–' : this.format(v)),
          })),
        ],
        axes: [
          { stroke: '#57606a', grid: { stroke: '#eaeef2' } },
          { stroke: '#57606a', grid: { stroke: '#eaeef2' }, size: 64, label: this.unit, values: (u, vals) => vals.map((v) => this.format(v)) },
        ],
        legend: { live: true },
        cursor: { drag: { x: false, y: false } },
      }, history.data(this.field, keys), this.target);
    } else {
      this.plot.setData(history.data(this.field, keys));
    }
    // Without the pointer on the chart, the legend shows the latest values.
    if (this.plot.cursor.left === undefined || this.plot.cursor.left < 0) this.plot.setLegend({ idx: history.times.length - 1 });
  }
}
