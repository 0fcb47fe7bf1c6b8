/**
 * Turns the runs into the summary: medians per (scenario, variant, target), the
 * ratios against Kamailio and the raw pipe, a text table and an SVG chart.
 */

import type { Metered } from './meter.ts';
import type { Metric, Scenario } from './scenarios/scenario.ts';
import { median } from './stats.ts';

export interface RunRecord {
  scenario: string;
  variant: string;
  target: string;
  rep: number;
  status: 'ok' | 'failed' | 'n/a';
  reason?: string;
  metrics: Record<string, number>;
  metered?: Metered;
}

export interface SummaryRow {
  scenario: string;
  variant: string;
  target: string;
  status: 'ok' | 'failed' | 'n/a';
  reason?: string;
  runs: number;
  okRuns: number;
  /** Medians over the runs that passed their checks. */
  metrics: Record<string, number>;
  relayCpu: number;
  loadgenCpuShare: number;
  /** Primary metric per CPU-second of the relay (throughput scenarios). */
  perCpu: number;
  vsKamailio?: number;
  vsKamailioPerCpu?: number;
  vsRaw?: number;
  vsRawPerCpu?: number;
}

export function summarise(records: RunRecord[], scenarios: Scenario[]): SummaryRow[] {
  const rows: SummaryRow[] = [];
  const keys = new Map<string, RunRecord[]>();
  for (const r of records) {
    const k = `${r.scenario}\0${r.variant}\0${r.target}`;
    if (!keys.has(k)) keys.set(k, []);
    keys.get(k)!.push(r);
  }
  for (const runs of keys.values()) {
    const first = runs[0]!;
    const sc = scenarios.find((s) => s.name === first.scenario)!;
    const primary = sc.metrics[0]!;
    const ok = runs.filter((r) => r.status === 'ok');
    const na = runs.every((r) => r.status === 'n/a');
    const metrics: Record<string, number> = {};
    if (ok.length > 0) {
      for (const key of Object.keys(ok[0]!.metrics)) metrics[key] = median(ok.map((r) => r.metrics[key] ?? Number.NaN));
    }
    const reason = runs.find((r) => r.reason !== undefined)?.reason;
    rows.push({
      scenario: first.scenario,
      variant: first.variant,
      target: first.target,
      status: na ? 'n/a' : ok.length > 0 ? 'ok' : 'failed',
      ...(reason !== undefined ? { reason } : {}),
      runs: runs.length,
      okRuns: ok.length,
      metrics,
      relayCpu: median(ok.map((r) => r.metered?.relayCpu ?? Number.NaN)),
      loadgenCpuShare: median(ok.map((r) => (r.metered !== undefined ? r.metered.loadgenCpu / r.metered.seconds : Number.NaN))),
      perCpu: primary.perCpu
        ? // a rate times the phase's wall time is the work done; per CPU-second is that over the relay's CPU time
          median(ok.map((r) => (r.metered !== undefined && r.metered.relayCpu > 0 ? ((r.metrics[primary.key] ?? Number.NaN) * r.metered.seconds) / r.metered.relayCpu : Number.NaN)))
        : Number.NaN,
    });
  }
  for (const row of rows) {
    const sc = scenarios.find((s) => s.name === row.scenario)!;
    const key = sc.metrics[0]!.key;
    const ref = (name: string) => rows.find((r) => r.scenario === row.scenario && r.variant === row.variant && r.target === name && r.status === 'ok');
    const k = ref('kamailio');
    const raw = ref('raw');
    const v = row.metrics[key];
    if (row.status === 'ok' && v !== undefined) {
      if (k !== undefined) {
        row.vsKamailio = v / k.metrics[key]!;
        if (Number.isFinite(row.perCpu) && Number.isFinite(k.perCpu)) row.vsKamailioPerCpu = row.perCpu / k.perCpu;
      }
      if (raw !== undefined) {
        row.vsRaw = v / raw.metrics[key]!;
        if (Number.isFinite(row.perCpu) && Number.isFinite(raw.perCpu)) row.vsRawPerCpu = row.perCpu / raw.perCpu;
      }
    }
  }
  return rows;
}

// ------------------------------------------------------------------ text

function fmt(x: number | undefined, unit = ''): string {
  if (x === undefined || !Number.isFinite(x)) return '-';
  const a = Math.abs(x);
  const s = a >= 100 ? Math.round(x).toLocaleString('en-US') : a >= 10 ? x.toFixed(1) : x.toFixed(2);
  return unit === '' ? s : `${s} ${unit}`;
}

function ratio(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '-' : `${x.toFixed(2)}x`;
}

function describe(row: SummaryRow, metrics: readonly Metric[]): string {
  if (row.status === 'n/a') return `n/a (${row.reason ?? ''})`;
  if (row.status === 'failed') return `FAILED (${row.reason ?? ''})`;
  return metrics
    .map((m, i) => {
      const v = row.metrics[m.key];
      if (m.key === 'B/session') return `${fmt((v ?? Number.NaN) / 1024)} KiB/session`;
      if (m.key === 'held B/session') return v === undefined ? '' : `held ${fmt(v / 1024)} KiB`;
      if (m.key === 'marginal B/session') return `marginal ${fmt((v ?? Number.NaN) / 1024)} KiB`;
      return i === 0 ? fmt(v, m.unit) : `${m.key.replace(' ms', '')} ${fmt(v)}`;
    })
    .filter((x) => x !== '')
    .join(', ');
}

export function table(rows: SummaryRow[], scenarios: Scenario[]): string {
  const head = ['scenario', 'variant', 'target', 'result (median)', 'per relay CPU-s', 'relay CPU s', 'gen CPU', 'vs kamailio (/CPU)', 'vs raw (/CPU)', 'ok'];
  const body: string[][] = [];
  for (const sc of scenarios) {
    for (const r of rows.filter((x) => x.scenario === sc.name)) {
      const primary = sc.metrics[0]!;
      body.push([
        r.scenario,
        r.variant,
        r.target,
        describe(r, sc.metrics),
        primary.perCpu && r.status === 'ok' ? fmt(r.perCpu) : '-',
        r.status === 'ok' ? fmt(r.relayCpu) : '-',
        r.status === 'ok' && Number.isFinite(r.loadgenCpuShare) ? `${Math.round(r.loadgenCpuShare * 100)}%` : '-',
        r.vsKamailio !== undefined ? `${ratio(r.vsKamailio)} (${ratio(r.vsKamailioPerCpu)})` : '-',
        r.vsRaw !== undefined ? `${ratio(r.vsRaw)} (${ratio(r.vsRawPerCpu)})` : '-',
        `${r.okRuns}/${r.runs}`,
      ]);
    }
  }
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

// ------------------------------------------------------------------- SVG

const COLOURS: Record<string, string> = { msrprelay: '#2b6cb0', 'msrprelay-sql': '#4c9be8', kamailio: '#c05621', raw: '#718096', direct: '#a0aec0' };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** One panel per scenario variant, one bar per target: the primary metric's median. */
export function chart(rows: SummaryRow[], scenarios: Scenario[], title: string): string {
  const width = 900;
  const labelW = 130;
  const barMax = width - labelW - 170;
  const barH = 18;
  let y = 40;
  const parts: string[] = [];
  for (const sc of scenarios) {
    const primary = sc.metrics[0]!;
    const variants = [...new Set(rows.filter((r) => r.scenario === sc.name).map((r) => r.variant))];
    for (const variant of variants) {
      const rs = rows.filter((r) => r.scenario === sc.name && r.variant === variant);
      const max = Math.max(1e-9, ...rs.map((r) => (r.status === 'ok' ? (r.metrics[primary.key] ?? 0) : 0)));
      const better = primary.higherIsBetter ? 'higher is better' : 'lower is better';
      parts.push(`<text x="10" y="${y}" font-weight="bold">${esc(`${sc.name} ${variant}: ${primary.key}`)} <tspan font-weight="normal" fill="#555">(${better})</tspan></text>`);
      y += 8;
      for (const r of rs) {
        const v = r.metrics[primary.key];
        const w = r.status === 'ok' && v !== undefined && Number.isFinite(v) ? Math.max(1, (v / max) * barMax) : 0;
        const label = r.status === 'ok' ? fmt(primary.key === 'B/session' ? (v ?? 0) / 1024 : v, primary.key === 'B/session' ? 'KiB' : primary.unit) : r.status === 'n/a' ? 'n/a' : 'failed';
        parts.push(`<text x="${labelW - 6}" y="${y + 13}" text-anchor="end">${esc(r.target)}</text>`);
        parts.push(`<rect x="${labelW}" y="${y}" width="${w.toFixed(1)}" height="${barH - 4}" fill="${COLOURS[r.target] ?? '#38a169'}"/>`);
        parts.push(`<text x="${labelW + w + 6}" y="${y + 13}">${esc(label)}</text>`);
        y += barH;
      }
      y += 22;
    }
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
