// Number and time formatting, one place, so every screen reads the same.

const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

export function int(x: unknown): string {
  return isNum(x) ? Math.round(x).toLocaleString('en-US') : '–';
}

/** Up to `digits` significant-ish decimals, trimming noise on large values. */
export function num(x: unknown, digits = 4): string {
  if (!isNum(x)) return '–';
  const abs = Math.abs(x);
  if (abs !== 0 && (abs >= 1e6 || abs < 1e-4)) return x.toExponential(2);
  const d = abs >= 1000 ? 1 : abs >= 100 ? 2 : digits;
  return x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: 0 });
}

export function signed(x: unknown, digits = 4): string {
  if (!isNum(x)) return '–';
  return (x > 0 ? '+' : x < 0 ? '−' : '') + num(Math.abs(x), digits);
}

export function pct(x: unknown, digits = 1): string {
  return isNum(x) ? (x * 100).toFixed(digits) + '%' : '–';
}

export function signedPct(x: unknown, digits = 1): string {
  if (!isNum(x)) return '–';
  return (x > 0 ? '+' : x < 0 ? '−' : '') + Math.abs(x * 100).toFixed(digits) + '%';
}

export function pValue(p: unknown): string {
  if (!isNum(p)) return '–';
  if (p < 0.0001) return '< 0.0001';
  return p.toFixed(4);
}

/** "p = 0.0123" or "p < 0.0001". */
export function pIs(p: unknown): string {
  const s = pValue(p);
  return s.startsWith('<') ? `p ${s}` : `p = ${s}`;
}

export function dateTime(s: unknown): string {
  if (typeof s !== 'string' || !s) return '–';
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return s;
  return d.toLocaleString('en-GB', { year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function timeOnly(d: Date): string {
  return d.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function relative(s: unknown): string {
  if (typeof s !== 'string') return '–';
  const t = new Date(s).getTime();
  if (Number.isNaN(t)) return s;
  const secs = Math.round((Date.now() - t) / 1000);
  if (secs < 45) return 'just now';
  const mins = Math.round(secs / 60);
  if (mins < 60) return `${mins} min ago`;
  const hours = Math.round(mins / 60);
  if (hours < 36) return `${hours} h ago`;
  return `${Math.round(hours / 24)} d ago`;
}

/** A span of seconds in words: "45 s", "1 h 30 min", "2 d 4 h". */
export function duration(seconds: unknown): string {
  if (!isNum(seconds)) return '–';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const parts: [number, string][] = [
    [Math.floor(s / 86400), 'd'],
    [Math.floor((s % 86400) / 3600), 'h'],
    [Math.floor((s % 3600) / 60), 'min'],
    [s % 60, 's'],
  ];
  // The two largest units are enough to read a hold time.
  const first = parts.findIndex(([n]) => n > 0);
  return parts
    .slice(first, first + 2)
    .filter(([n]) => n > 0)
    .map(([n, u]) => `${n} ${u}`)
    .join(' ');
}

export { isNum };
