import { M, type Matcher, type Template, type Tuple, type TypeName, V, type Value } from './tuples';

/**
 * A readable tuple syntax (the CLI's): `("job", 42, 1.5, true, null, @2026-01-01T00:00:00Z, b64:AAE=,
 * (1, 2), owner="ann")`. Integers are ints, numbers with a point or exponent doubles. Templates add `*`
 * (anything), `?int` / `?string` / … (a formal), `<3`, `<=3`, `>3`, `>=3`, `1..10` (a range) and `"pre"*`
 * (a prefix); a template whose items are all `name=<matcher>` (e.g. `prio=>=2`) is a named query.
 */
class Parser {
  private i = 0;
  constructor(private readonly s: string) {}

  private ws(): void {
    while (this.i < this.s.length && /\s/.test(this.s[this.i] as string)) this.i++;
  }
  private peek(): string {
    this.ws();
    return this.s[this.i] ?? '';
  }
  private fail(what: string): never {
    throw new SyntaxError(`${what} at position ${this.i} of ${JSON.stringify(this.s)}`);
  }
  private eat(c: string): boolean {
    if (this.peek() === c) {
      this.i++;
      return true;
    }
    return false;
  }
  done(): void {
    if (this.peek() !== '') this.fail('unexpected text');
  }

  /** Items separated by commas, optionally inside parentheses. */
  list<T>(item: () => T): T[] {
    const paren = this.eat('(');
    const out: T[] = [];
    if (paren && this.eat(')')) return out;
    if (!paren && this.peek() === '') return out;
    for (;;) {
      out.push(item());
      if (this.eat(',')) continue;
      if (paren && !this.eat(')')) this.fail('expected , or )');
      return out;
    }
  }

  private name(): string {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*=(?!=)/.exec(this.s.slice(this.i));
    if (!m) return '';
    this.i += m[0].length;
    return m[1] as string;
  }

  private string(): string {
    const m = /^"(?:[^"\\]|\\.)*"/.exec(this.s.slice(this.i));
    if (!m) this.fail('unterminated string');
    this.i += m[0].length;
    return JSON.parse(m[0]) as string;
  }

  private word(): string {
    const m = /^[^\s,()]+/.exec(this.s.slice(this.i));
    if (!m) this.fail('expected a value');
    this.i += m[0].length;
    return m[0];
  }

  value(): Value {
    const c = this.peek();
    if (c === '"') return V.string(this.string());
    if (c === '(')
      return { kind: { $case: 'tupleValue', tupleValue: { fields: this.list(() => this.field()) } } };
    const w = this.word();
    if (w === 'true' || w === 'false') return V.bool(w === 'true');
    if (w === 'null') return V.null();
    if (w.startsWith('@')) {
      const t = Date.parse(w.slice(1));
      if (Number.isNaN(t)) this.fail(`bad timestamp ${w}`);
      return V.timestamp(t);
    }
    if (w.startsWith('b64:')) return V.bytes(Buffer.from(w.slice(4), 'base64'));
    if (/^[+-]?\d+$/.test(w)) return V.int(Number(w));
    if (/^[+-]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][+-]?\d+)$/.test(w)) return V.double(Number(w));
    return this.fail(`cannot read ${JSON.stringify(w)} (strings need quotes)`);
  }

  field() {
    const name = this.name();
    return { name, value: this.value() };
  }

  matcher(): Matcher {
    const name = this.name();
    const m = this.bareMatcher();
    return { ...m, name };
  }

  private bareMatcher(): Matcher {
    const c = this.peek();
    if (c === '*') {
      this.i++;
      return M.any();
    }
    if (c === '?') {
      this.i++;
      const t = this.word() as TypeName;
      if (!['string', 'int', 'double', 'bool', 'bytes', 'timestamp', 'tuple', 'null'].includes(t))
        this.fail(`unknown type ?${t}`);
      return M.formal(t);
    }
    for (const op of ['<=', '>=', '<', '>'] as const) {
      if (this.s.startsWith(op, this.i)) {
        this.i += op.length;
        const v = this.value();
        return op === '<' ? M.lt(v) : op === '<=' ? M.le(v) : op === '>' ? M.gt(v) : M.ge(v);
      }
    }
    if (c === '"') {
      const str = this.string();
      if (this.s[this.i] === '*') {
        this.i++;
        return M.prefix(str);
      }
      return M.actual(V.string(str));
    }
    const start = this.i;
    const w = /^[^\s,()]+/.exec(this.s.slice(this.i))?.[0] ?? '';
    const between = /^([+-]?[\d.eE+-]+)\.\.([+-]?[\d.eE+-]+)$/.exec(w);
    if (between) {
      this.i += w.length;
      const num = (x: string) => (/^[+-]?\d+$/.test(x) ? V.int(Number(x)) : V.double(Number(x)));
      return M.between(num(between[1] as string), num(between[2] as string));
    }
    this.i = start;
    return M.actual(this.value());
  }
}

export function parseTuple(text: string): Tuple {
  const p = new Parser(text);
  const fields = p.list(() => p.field());
  p.done();
  return { fields };
}

export function parseTemplate(text: string): Template {
  const p = new Parser(text);
  const fields = p.list(() => p.matcher());
  p.done();
  return { fields };
}

function formatValue(v: Value | undefined): string {
  const k = v?.kind;
  if (!k) return 'null';
  switch (k.$case) {
    case 'stringValue':
      return JSON.stringify(k.stringValue);
    case 'intValue':
      return String(k.intValue);
    case 'doubleValue':
      return Number.isInteger(k.doubleValue) ? `${k.doubleValue}.0` : String(k.doubleValue);
    case 'boolValue':
      return String(k.boolValue);
    case 'bytesValue':
      return `b64:${k.bytesValue.toString('base64')}`;
    case 'timestampValue':
      return `@${new Date(k.timestampValue).toISOString()}`;
    case 'tupleValue':
      return formatTuple(k.tupleValue);
    case 'nullValue':
      return 'null';
  }
}

/** The syntax parseTuple reads. */
export function formatTuple(t: Tuple | undefined): string {
  return `(${(t?.fields ?? []).map((f) => (f.name ? `${f.name}=` : '') + formatValue(f.value)).join(', ')})`;
}
