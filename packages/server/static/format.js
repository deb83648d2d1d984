// Formatting of figures for the dashboard: durations, counts, rates and times, short and with units.

/** A duration in ms: "0 ms", "45 ms", "1.2 s", "3 min", "2.5 h". */
export function duration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(ms < 600_000 ? 1 : 0)} min`;
  if (ms < 86_400_000) return `${(ms / 3_600_000).toFixed(1)} h`;
  return `${(ms / 86_400_000).toFixed(1)} d`;
}

/** A count: "0", "999", "12,345", "1.2M". */
export function count(n) {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  if (Math.abs(n) >= 10_000_000) return `${(n / 1_000_000).toFixed(1)}M`;
  return Math.round(n).toLocaleString('en-US');
}

/** A per-second rate of items: "0/s", "12/s", "1.5k/s". */
export function rate(perSecond) {
  if (perSecond === null || perSecond === undefined || !Number.isFinite(perSecond)) return '–';
  if (perSecond >= 10_000) return `${(perSecond / 1_000).toFixed(0)}k/s`;
  if (perSecond >= 1_000) return `${(perSecond / 1_000).toFixed(1)}k/s`;
  if (perSecond > 0 && perSecond < 10) return `${perSecond.toFixed(1)}/s`;
  return `${Math.round(perSecond)}/s`;
}

/** Bytes: "512 B", "1.5 KiB", "3.2 MiB". */
export function bytes(n) {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  if (n < 1024) return `${Math.round(n)} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(1)} GiB`;
}

/** A wall-clock time as HH:MM:SS (local time). */
export function clock(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  const d = new Date(ms);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((v) => String(v).padStart(2, '0')).join(':');
}

/** A wall-clock time relative to `nowMs`: "just now", "12 s ago", "3 min ago", or the time of day. */
export function ago(ms, nowMs) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  const age = nowMs - ms;
  if (age < 2_000) return 'just now';
  if (age < 3_600_000) return `${duration(age)} ago`;
  return clock(ms);
}
