// The targeting editor's model: simple rules (attribute, operator, value, all must hold) that map
// one-to-one onto the targeting language, and back where a condition is that simple. Anything
// richer (and/or/not) stays in the JSON editor.

export const OPERATORS: { op: string; label: string; hint: string }[] = [
  { op: 'in', label: 'is one of', hint: 'comma-separated, e.g. US, CA' },
  { op: 'nin', label: 'is none of', hint: 'comma-separated' },
  { op: 'eq', label: 'equals', hint: 'a value' },
  { op: 'ne', label: 'does not equal', hint: 'a value' },
  { op: 'gt', label: '>', hint: 'a number or text' },
  { op: 'gte', label: '≥', hint: 'a number or text' },
  { op: 'lt', label: '<', hint: 'a number or text' },
  { op: 'lte', label: '≤', hint: 'a number or text' },
  { op: 'exists', label: 'exists', hint: 'true or false' },
  { op: 'regex', label: 'matches regex', hint: 'e.g. ^pro' },
  { op: 'semver', label: 'version in range', hint: 'e.g. >=2.1.0, <3' },
];

export interface Rule {
  attr: string;
  op: string;
  value: string;
}

function scalar(s: string): unknown {
  const t = s.trim();
  if (t === 'true') return true;
  if (t === 'false') return false;
  if (t !== '' && /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(t)) return Number(t);
  return t;
}

function show(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** Rules → a targeting condition (`{}` when there are none). Incomplete rows are skipped. */
export function rulesToJson(rules: Rule[]): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const r of rules) {
    const attr = r.attr.trim();
    if (!attr) continue;
    let v: unknown;
    switch (r.op) {
      case 'in':
      case 'nin':
        v = r.value
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean)
          .map(scalar);
        break;
      case 'exists':
        v = r.value.trim() !== 'false';
        break;
      case 'regex':
      case 'semver':
        v = r.value;
        break;
      default:
        v = scalar(r.value);
    }
    (out[attr] ??= {})[r.op] = v;
  }
  return out;
}

const OPS = new Set(OPERATORS.map((o) => o.op));

/** A condition → rules, or null when it needs the JSON editor. */
export function jsonToRules(cond: unknown): Rule[] | null {
  if (cond === null || cond === undefined) return [];
  if (typeof cond !== 'object' || Array.isArray(cond)) return null;
  const rules: Rule[] = [];
  for (const [attr, spec] of Object.entries(cond as Record<string, unknown>)) {
    if (attr === 'and' || attr === 'or' || attr === 'not') return null;
    if (spec !== null && typeof spec === 'object' && !Array.isArray(spec)) {
      for (const [op, v] of Object.entries(spec as Record<string, unknown>)) {
        if (!OPS.has(op)) return null;
        if (op === 'in' || op === 'nin') {
          if (!Array.isArray(v) || v.some((x) => typeof x === 'object' || String(x).includes(','))) return null;
          rules.push({ attr, op, value: v.map(show).join(', ') });
        } else if (v !== null && typeof v === 'object') {
          return null;
        } else {
          rules.push({ attr, op, value: show(v) });
        }
      }
    } else if (spec === null || typeof spec !== 'object') {
      rules.push({ attr, op: 'eq', value: show(spec) });
    } else {
      return null;
    }
  }
  return rules;
}

/** Which dialect the engine reads a condition in (shared/README.md): a `$`-key anywhere makes it
 * GrowthBook's, anything else is ours. Shown beside the JSON so nobody has to guess. */
export function dialectOf(cond: unknown): 'growthbook' | 'litmus' {
  const hasDollar = (v: unknown): boolean =>
    Array.isArray(v) ? v.some(hasDollar) : v !== null && typeof v === 'object' && Object.entries(v as object).some(([k, x]) => k.startsWith('$') || hasDollar(x));
  return hasDollar(cond) ? 'growthbook' : 'litmus';
}

export const DIALECT_LABEL = { growthbook: "GrowthBook's dialect ($-operators)", litmus: "Litmus's dialect" } as const;
