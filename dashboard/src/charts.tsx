// Charts: Chart.js (tree-shaken to what we draw), wrapped in one Preact component that keeps the
// chart alive across renders and updates its data in place, so bars and lines move rather than
// redraw. Each canvas has role="img" and a text label; every chart also has a table beside it.
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
  type ChartConfiguration,
  type ChartData,
  type ChartOptions,
  type Plugin,
} from 'chart.js';
import { useEffect, useRef } from 'preact/hooks';
import type { Lift, VariantResult } from './api';
import { int, num, pct, signedPct } from './format';

Chart.register(BarController, BarElement, LineController, LineElement, PointElement, CategoryScale, LinearScale, Legend, Tooltip);

const reduceMotion = typeof matchMedia === 'function' && matchMedia('(prefers-reduced-motion: reduce)').matches;
Chart.defaults.font.family = getComputedStyle(document.documentElement).getPropertyValue('--font').trim() || 'system-ui, sans-serif';
Chart.defaults.font.size = 12;
Chart.defaults.color = '#374151';
Chart.defaults.borderColor = '#e5e7eb';
Chart.defaults.animation = reduceMotion ? false : { duration: 450, easing: 'easeOutCubic' };

const PALETTE = ['#64748b', '#4f46e5', '#0891b2', '#d97706', '#db2777', '#16a34a', '#7c3aed', '#b91c1c'];

/** The control is slate; treatments take the palette in order. */
export function variantColor(index: number): string {
  return PALETTE[index % PALETTE.length];
}

const GOOD = '#15803d';
const BAD = '#b91c1c';
const NEUTRAL = '#6b7280';

/** A dashed line at zero on the value axis (options.plugins.zeroLine.axis = 'x' | 'y'). */
const zeroLine: Plugin = {
  id: 'zeroLine',
  afterDatasetsDraw(chart, _args, opts: { axis?: 'x' | 'y' }) {
    const axis = opts?.axis;
    if (!axis) return;
    const scale = chart.scales[axis];
    if (!scale || scale.min > 0 || scale.max < 0) return;
    const { ctx, chartArea } = chart;
    const p = scale.getPixelForValue(0);
    ctx.save();
    ctx.strokeStyle = '#111827';
    ctx.lineWidth = 1;
    ctx.setLineDash([4, 4]);
    ctx.beginPath();
    if (axis === 'x') {
      ctx.moveTo(p, chartArea.top);
      ctx.lineTo(p, chartArea.bottom);
    } else {
      ctx.moveTo(chartArea.left, p);
      ctx.lineTo(chartArea.right, p);
    }
    ctx.stroke();
    ctx.restore();
  },
};
Chart.register(zeroLine);

type Props = {
  type: 'bar' | 'line';
  data: ChartData<'bar' | 'line', unknown[], unknown>;
  options: ChartOptions;
  label: string;
  height: number;
  testId?: string;
};

/** Creates the chart once; later renders copy new data into the live datasets and animate. */
export function ChartCanvas({ type, data, options, label, height, testId }: Props) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const chart = useRef<Chart | null>(null);

  useEffect(() => {
    const config = { type, data: structuredCloneData(data), options } as ChartConfiguration;
    chart.current = new Chart(canvas.current!, config);
    return () => {
      chart.current?.destroy();
      chart.current = null;
    };
  }, [type]);

  useEffect(() => {
    const c = chart.current;
    if (!c) return;
    c.data.labels = data.labels ? [...data.labels] : undefined;
    const next = data.datasets;
    c.data.datasets.splice(next.length);
    next.forEach((ds, i) => {
      if (c.data.datasets[i]) Object.assign(c.data.datasets[i], ds, { data: [...ds.data] });
      else c.data.datasets.push({ ...ds, data: [...ds.data] } as never);
    });
    c.options = options as never;
    c.update();
  });

  return (
    <div class="chart" style={{ height: `${height}px` }} data-testid={testId}>
      <canvas ref={canvas} role="img" aria-label={label}>
        {label}
      </canvas>
    </div>
  );
}

function structuredCloneData<T extends ChartData<'bar' | 'line', unknown[], unknown>>(d: T): T {
  return { ...d, labels: d.labels ? [...d.labels] : undefined, datasets: d.datasets.map((ds) => ({ ...ds, data: [...ds.data] })) } as T;
}

/** Exposed units per variant, beside the count the configured weights would predict. */
export function ExposureBars({ variants }: { variants: VariantResult[] }) {
  const total = variants.reduce((s, v) => s + (v.exposures || 0), 0);
  const labels = variants.map((v) => v.key);
  const data = {
    labels,
    datasets: [
      {
        label: 'Exposed units',
        data: variants.map((v) => v.exposures || 0),
        backgroundColor: variants.map((_, i) => variantColor(i)),
        borderRadius: 4,
        barPercentage: 0.9,
        categoryPercentage: 0.8,
      },
      {
        label: 'Expected at configured weights',
        data: variants.map((v) => Math.round((v.weight || 0) * total)),
        backgroundColor: 'rgba(148, 163, 184, 0.35)',
        borderColor: '#94a3b8',
        borderWidth: 1,
        borderRadius: 4,
        barPercentage: 0.9,
        categoryPercentage: 0.8,
      },
    ],
  };
  const options: ChartOptions<'bar'> = {
    indexAxis: 'y',
    responsive: true,
    maintainAspectRatio: false,
    scales: {
      x: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: 'units' } },
      y: { ticks: { font: { family: 'ui-monospace, SFMono-Regular, Menlo, monospace' } } },
    },
    plugins: {
      legend: { position: 'bottom', labels: { boxWidth: 12 } },
      tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${int(ctx.parsed.x)}` } },
    },
  };
  const summary = variants.map((v) => `${v.key} ${int(v.exposures)}`).join(', ');
  return (
    <ChartCanvas
      type="bar"
      data={data as never}
      options={options as ChartOptions}
      height={Math.max(140, 56 * variants.length + 60)}
      label={`Bar chart of exposed units per variant: ${summary}.`}
      testId="exposure-chart"
    />
  );
}

/** One metric's lifts against control: a point at the estimate, a bar over the 95% CI, zero dashed. */
export function ForestPlot({ rows, metric, isRate }: { rows: Lift[]; metric: string; isRate?: boolean }) {
  const has = (r: Lift) => typeof r.ci_low === 'number' && typeof r.ci_high === 'number';
  const colorFor = (r: Lift) => (!has(r) ? NEUTRAL : (r.ci_low as number) > 0 ? GOOD : (r.ci_high as number) < 0 ? BAD : NEUTRAL);
  const xs = rows.flatMap((r) => [r.ci_low, r.ci_high, r.abs_lift]).filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  const lo = Math.min(0, ...xs);
  const hi = Math.max(0, ...xs);
  const pad = (hi - lo || 1) * 0.08;
  const data = {
    labels: rows.map((r) => r.variant),
    datasets: [
      {
        type: 'bar',
        label: '95% confidence interval',
        data: rows.map((r) => (has(r) ? [r.ci_low, r.ci_high] : null)),
        backgroundColor: rows.map((r) => colorFor(r) + '55'),
        borderColor: rows.map(colorFor),
        borderWidth: 1,
        borderSkipped: false,
        barThickness: 10,
        order: 2,
      },
      {
        type: 'line',
        label: 'Estimated lift',
        data: rows.map((r) => (typeof r.abs_lift === 'number' ? r.abs_lift : null)),
        showLine: false,
        pointStyle: 'rectRot',
        pointRadius: 7,
        pointHoverRadius: 8,
        pointBackgroundColor: rows.map(colorFor),
        pointBorderColor: '#111827',
        order: 1,
      },
    ],
  };
  const options = {
    indexAxis: 'y',
    responsive: true,
    maintainAspectRatio: false,
    scales: {
      // Suggested bounds: Chart.js rounds them out to tidy ticks, zero always in view.
      x: {
        suggestedMin: lo - pad,
        suggestedMax: hi + pad,
        title: { display: true, text: isRate ? `change in ${metric} rate vs control, percentage points (95% CI)` : `absolute lift in ${metric} vs control (95% CI)` },
        ticks: { callback: (v: number | string) => (isRate ? signedPct(Number(v), 0).replace('%', ' pp') : num(Number(v), 3)) },
      },
      y: { ticks: { font: { family: 'ui-monospace, SFMono-Regular, Menlo, monospace' } } },
    },
    plugins: {
      legend: { display: false },
      zeroLine: { axis: 'x' },
      tooltip: {
        callbacks: {
          label: (ctx: { dataIndex: number }) => {
            const r = rows[ctx.dataIndex];
            const f = (x: unknown) => (isRate ? signedPct(x, 2) : num(x));
            return `${r.variant}: ${f(r.abs_lift)} [${f(r.ci_low)}, ${f(r.ci_high)}] (${signedPct(r.rel_lift)} relative)`;
          },
        },
      },
    },
  };
  const summary = rows.map((r) => `${r.variant} ${num(r.abs_lift)} (95% CI ${num(r.ci_low)} to ${num(r.ci_high)})`).join('; ');
  return (
    <ChartCanvas
      type="bar"
      data={data as never}
      options={options as never}
      height={Math.max(110, 46 * rows.length + 70)}
      label={`Forest plot of the lift in ${metric} against control: ${summary}.`}
      testId={`forest-${metric}`}
    />
  );
}

export interface Series {
  label: string;
  color: string;
  points: { x: number; y: number | null }[];
}

const MIN = 60e3;
const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080].map((m) => m * MIN);

/** A tick step on whole minutes/hours/days giving at most ~8 ticks over the span. */
function timeStep(spanMs: number): number {
  return STEPS.find((s) => spanMs / s <= 8) ?? STEPS[STEPS.length - 1];
}

/** Cumulative relative lift of each treatment over time. */
export function LiftSeries({ series, metric, spanMs }: { series: Series[]; metric: string; spanMs: number }) {
  // A single time bucket has no span: Chart.js would then pick an arbitrary range around it
  // (weeks of time-of-day labels); show ten minutes around it instead.
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const single = xs.length > 0 && Math.max(...xs) - Math.min(...xs) < MIN;
  const range = single ? { min: Math.min(...xs) - 5 * MIN, max: Math.min(...xs) + 5 * MIN } : {};
  const span = single ? 10 * MIN : spanMs;
  const fmtTime = (ms: number) => {
    const d = new Date(ms);
    return span > 3 * 86400e3
      ? d.toLocaleDateString('en-GB', { month: 'short', day: '2-digit' })
      : d.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' });
  };
  const data = {
    datasets: series.map((s) => ({
      type: 'line',
      label: s.label,
      data: s.points,
      borderColor: s.color,
      backgroundColor: s.color,
      pointRadius: s.points.length > 40 ? 0 : 3,
      borderWidth: 2,
      tension: 0.2,
      spanGaps: true,
    })),
  };
  const options = {
    responsive: true,
    maintainAspectRatio: false,
    parsing: false,
    scales: {
      x: { type: 'linear', ...range, ticks: { callback: (v: number | string) => fmtTime(Number(v)), stepSize: timeStep(span), autoSkip: true, maxRotation: 0 } },
      y: { title: { display: true, text: `relative lift in ${metric}` }, ticks: { callback: (v: number | string) => signedPct(Number(v), 0) } },
    },
    plugins: {
      legend: { position: 'bottom', labels: { boxWidth: 12 } },
      zeroLine: { axis: 'y' },
      tooltip: {
        callbacks: {
          title: (items: { parsed: { x: number } }[]) => (items[0] ? new Date(items[0].parsed.x).toLocaleString('en-GB') : ''),
          label: (ctx: { dataset: { label: string }; parsed: { y: number } }) => `${ctx.dataset.label}: ${signedPct(ctx.parsed.y, 2)}`,
        },
      },
    },
  };
  return (
    <ChartCanvas
      type="line"
      data={data as never}
      options={options as never}
      height={260}
      label={`Line chart of the cumulative relative lift in ${metric} of each variant against control over time.`}
      testId="lift-series"
    />
  );
}

/** Bandit: each arm's probability of being the best. */
export function WinProbabilityBars({ arms }: { arms: { key: string; p: number }[] }) {
  const data = {
    labels: arms.map((a) => a.key),
    datasets: [{ label: 'Probability of being best', data: arms.map((a) => a.p), backgroundColor: arms.map((_, i) => variantColor(i)), borderRadius: 4 }],
  };
  const options = {
    responsive: true,
    maintainAspectRatio: false,
    scales: { y: { min: 0, max: 1, ticks: { callback: (v: number | string) => pct(Number(v), 0) } } },
    plugins: { legend: { display: false }, tooltip: { callbacks: { label: (ctx: { parsed: { y: number } }) => pct(ctx.parsed.y, 1) } } },
  };
  return (
    <ChartCanvas
      type="bar"
      data={data as never}
      options={options as never}
      height={220}
      label={`Bar chart of win probabilities: ${arms.map((a) => `${a.key} ${pct(a.p)}`).join(', ')}.`}
      testId="win-probability-chart"
    />
  );
}

/** Bandit: the weight each arm was served at, version after version (a step line per arm). */
export function WeightHistory({ arms, versions }: { arms: string[]; versions: { at: number; weights: Record<string, number> }[] }) {
  const data = {
    datasets: arms.map((key, i) => ({
      type: 'line',
      label: key,
      data: versions.map((v) => ({ x: v.at, y: v.weights[key] ?? 0 })),
      borderColor: variantColor(i),
      backgroundColor: variantColor(i),
      stepped: 'before',
      pointRadius: versions.length > 40 ? 0 : 2,
      borderWidth: 2,
    })),
  };
  const options = {
    responsive: true,
    maintainAspectRatio: false,
    parsing: false,
    scales: {
      x: { type: 'linear', ticks: { callback: (v: number | string) => new Date(Number(v)).toLocaleTimeString('en-GB'), autoSkip: true, maxRotation: 0 } },
      y: { min: 0, max: 1, title: { display: true, text: 'share of traffic served' }, ticks: { callback: (v: number | string) => pct(Number(v), 0) } },
    },
    plugins: { legend: { position: 'bottom', labels: { boxWidth: 12 } } },
  };
  const last = versions.at(-1);
  return (
    <ChartCanvas
      type="line"
      data={data as never}
      options={options as never}
      height={240}
      label={`Line chart of the weights served over ${versions.length} versions${last ? `; now ${arms.map((a) => `${a} ${pct(last.weights[a] ?? 0)}`).join(', ')}` : ''}.`}
      testId="weight-history"
    />
  );
}
