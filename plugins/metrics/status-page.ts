/**
 * The status page at `/`: live numbers for a person, in one HTML document with
 * no external assets. The server renders the current values; a small inline
 * script then fetches `status.json` every second, updates the table and redraws
 * an inline SVG sparkline of throughput.
 */

import type { StatusSnapshot } from './relay-metrics.ts';

export const STATUS_PAGE_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:";

const WIDTH = 300;
const HEIGHT = 60;

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** SVG polyline points for a series, scaled to the sparkline box. */
export function sparklinePoints(series: readonly number[]): string {
  if (series.length === 0) return `0,${HEIGHT} ${WIDTH},${HEIGHT}`;
  // A single sample is drawn as a flat line across the box.
  const values = series.length === 1 ? [series[0]!, series[0]!] : series;
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? WIDTH / (values.length - 1) : WIDTH;
  return values.map((v, i) => `${Math.round(i * step * 10) / 10},${Math.round((HEIGHT - (v / max) * (HEIGHT - 2)) * 10) / 10}`).join(' ');
}

function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** The rows of the table: id, label, and how to read the value from a snapshot. */
const ROWS: ReadonlyArray<[string, string, (s: StatusSnapshot) => string]> = [
  ['sessions', 'Sessions active', (s) => String(s.sessions.active)],
  ['sessions-total', 'Sessions created', (s) => String(s.sessions.total)],
  ['connections', 'Connections open', (s) => String(s.connections.open)],
  ['auth', 'AUTH ok / failed', (s) => `${s.auth.success} / ${s.auth.failure}`],
  ['send', 'SEND requests', (s) => String(s.requests.SEND ?? 0)],
  ['bytes', 'Bytes out / in', (s) => `${human(s.bytes.outward)} / ${human(s.bytes.inward)}`],
  ['throughput', 'Throughput', (s) => `${human(s.throughput.bytesPerSecond)}/s, ${s.throughput.messagesPerSecond} msg/s`],
  ['throttle', 'Throttle hits', (s) => String(s.throttleHits)],
  ['loop', 'Event-loop delay p99', (s) => `${s.eventLoopDelayMs.p99} ms`],
  ['uptime', 'Uptime', (s) => `${s.uptimeSeconds} s`],
];

export function renderStatusPage(s: StatusSnapshot, title: string): string {
  const rows = ROWS.map(([id, label, read]) => `<tr><th scope="row">${esc(label)}</th><td id="${id}">${esc(read(s))}</td></tr>`).join('\n');
  const points = sparklinePoints(s.throughput.history.map((h) => h.bytesPerSecond));
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; min-width: 24em; }
th, td { text-align: left; padding: .3em .8em; border-bottom: 1px solid #ddd; }
td { font-variant-numeric: tabular-nums; }
svg { border: 1px solid #ddd; margin-top: 1em; background: #fafafa; }
#stale { color: #b00; visibility: hidden; }
</style>
</head>
<body>
<h1>${esc(title)}</h1>
<table id="status">
${rows}
</table>
<svg id="sparkline" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="throughput, bytes per second, last ${s.throughput.history.length} seconds">
<polyline id="spark" fill="none" stroke="#1565c0" stroke-width="1.5" points="${points}"/>
</svg>
<p><small>Throughput (bytes/s) over the last minute. <span id="stale">not updating</span></small></p>
<script>
(() => {
  const W = ${WIDTH}, H = ${HEIGHT};
  const human = (b) => { const u = ['B','KiB','MiB','GiB','TiB']; let i = 0; while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; } return (i === 0 ? b : b.toFixed(1)) + ' ' + u[i]; };
  const rows = {
    sessions: (s) => String(s.sessions.active),
    'sessions-total': (s) => String(s.sessions.total),
    connections: (s) => String(s.connections.open),
    auth: (s) => s.auth.success + ' / ' + s.auth.failure,
    send: (s) => String(s.requests.SEND || 0),
    bytes: (s) => human(s.bytes.outward) + ' / ' + human(s.bytes.inward),
    throughput: (s) => human(s.throughput.bytesPerSecond) + '/s, ' + s.throughput.messagesPerSecond + ' msg/s',
    throttle: (s) => String(s.throttleHits),
    loop: (s) => s.eventLoopDelayMs.p99 + ' ms',
    uptime: (s) => s.uptimeSeconds + ' s',
  };
  const points = (v) => {
    if (v.length === 0) return '0,' + H + ' ' + W + ',' + H;
    if (v.length === 1) v = [v[0], v[0]];
    const max = Math.max(1, ...v);
    const step = v.length > 1 ? W / (v.length - 1) : W;
    return v.map((x, i) => (i * step).toFixed(1) + ',' + (H - (x / max) * (H - 2)).toFixed(1)).join(' ');
  };
  const stale = document.getElementById('stale');
  const tick = async () => {
    try {
      const r = await fetch('status.json', { cache: 'no-store' });
      const s = await r.json();
      for (const id in rows) document.getElementById(id).textContent = rows[id](s);
      document.getElementById('spark').setAttribute('points', points(s.throughput.history.map((h) => h.bytesPerSecond)));
      stale.style.visibility = 'hidden';
    } catch {
      stale.style.visibility = 'visible';
    }
  };
  setInterval(tick, 1000);
})();
</script>
</body>
</html>
`;
}
