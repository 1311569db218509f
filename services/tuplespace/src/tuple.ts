import {
  type Field,
  FieldType,
  type Matcher,
  type Range,
  type Template,
  type Tuple,
  Tuple as TupleCodec,
  type Value,
} from '@backplane/proto/tuplespace';
import { BackplaneError } from '@backplane/runtime';

export type { Field, Matcher, Template, Tuple, Value };

/** Documented limits on what a tuple may be (checked on every write and template). */
export const LIMITS = {
  /** Encoded size of one tuple. */
  maxTupleBytes: 1024 * 1024,
  /** Fields per tuple or template (nested tuples count separately). */
  maxFields: 256,
  /** Nesting depth of tuple-valued fields. */
  maxDepth: 8,
  /** Length of a field name. */
  maxNameLength: 256,
} as const;

export type Kind = NonNullable<Value['kind']>['$case'];

const TYPE_OF_KIND: Record<Kind, FieldType> = {
  stringValue: FieldType.FIELD_TYPE_STRING,
  intValue: FieldType.FIELD_TYPE_INT,
  doubleValue: FieldType.FIELD_TYPE_DOUBLE,
  boolValue: FieldType.FIELD_TYPE_BOOL,
  bytesValue: FieldType.FIELD_TYPE_BYTES,
  timestampValue: FieldType.FIELD_TYPE_TIMESTAMP,
  tupleValue: FieldType.FIELD_TYPE_TUPLE,
  nullValue: FieldType.FIELD_TYPE_NULL,
};

export function typeOf(v: Value | undefined): FieldType {
  return v?.kind ? TYPE_OF_KIND[v.kind.$case] : FieldType.FIELD_TYPE_NULL;
}

/** Checks a tuple against the documented limits and value rules; throws INVALID_ARGUMENT with where. */
export function validateTuple(t: Tuple | undefined, what = 'tuple', depth = 0): Tuple {
  if (!t) throw BackplaneError.badParameter(`${what} is missing`);
  if (depth > LIMITS.maxDepth)
    throw BackplaneError.badParameter(`${what} nests tuples deeper than ${LIMITS.maxDepth} levels`);
  if (t.fields.length > LIMITS.maxFields)
    throw BackplaneError.badParameter(`${what} has ${t.fields.length} fields (at most ${LIMITS.maxFields})`);
  t.fields.forEach((f, i) => {
    if (f.name.length > LIMITS.maxNameLength)
      throw BackplaneError.badParameter(`${what} field ${i}: name longer than ${LIMITS.maxNameLength}`);
    validateValue(f.value, `${what} field ${i}`, depth);
  });
  if (depth === 0) {
    const size = TupleCodec.encode(t).finish().length;
    if (size > LIMITS.maxTupleBytes)
      throw BackplaneError.badParameter(
        `${what} is ${size} bytes encoded (at most ${LIMITS.maxTupleBytes})`,
        {
          reason: 'TUPLE_TOO_LARGE',
        },
      );
  }
  return t;
}

function validateValue(v: Value | undefined, where: string, depth: number): void {
  const k = v?.kind;
  if (!k) throw BackplaneError.badParameter(`${where} has no value (use null_value for null)`);
  if (k.$case === 'doubleValue' && Number.isNaN(k.doubleValue))
    throw BackplaneError.badParameter(`${where} is NaN, which matches nothing`);
  if ((k.$case === 'intValue' || k.$case === 'timestampValue') && !Number.isSafeInteger(numberOf(v)))
    throw BackplaneError.badParameter(`${where} is outside ±2^53`);
  if (k.$case === 'tupleValue') validateTuple(k.tupleValue, where, depth + 1);
}

export function validateTemplate(t: Template | undefined): Template {
  if (!t) throw BackplaneError.badParameter('template is missing');
  if (t.fields.length > LIMITS.maxFields)
    throw BackplaneError.badParameter(`template has ${t.fields.length} fields (at most ${LIMITS.maxFields})`);
  const named = t.fields.filter((m) => m.name !== '').length;
  t.fields.forEach((m, i) => {
    const where = `template field ${i}`;
    const k = m.kind;
    if (!k)
      throw BackplaneError.badParameter(`${where} has no matcher (actual, formal, any, range or prefix)`);
    if (k.$case === 'actual') validateValue(k.actual, where, 0);
    if (k.$case === 'formal' && !(k.formal > 0 && k.formal <= FieldType.FIELD_TYPE_NULL))
      throw BackplaneError.badParameter(`${where}: unknown formal type ${k.formal}`);
    if (k.$case === 'range') validateRange(k.range, where);
  });
  if (named > 0 && named < t.fields.length)
    throw BackplaneError.badParameter(
      'a template names all its fields (a named query) or none (a positional one), not some',
    );
  return t;
}

function validateRange(r: Range, where: string): void {
  const bounds = [r.gt, r.ge, r.lt, r.le].filter((b): b is Value => b !== undefined);
  if (bounds.length === 0) throw BackplaneError.badParameter(`${where}: a range needs a bound`);
  const types = new Set(bounds.map(typeOf));
  if (types.size > 1) throw BackplaneError.badParameter(`${where}: range bounds of different types`);
  for (const b of bounds) {
    validateValue(b, where, 0);
    if (!ORDERED.has(typeOf(b)))
      throw BackplaneError.badParameter(`${where}: values of this type have no order`);
  }
}

const ORDERED = new Set([
  FieldType.FIELD_TYPE_STRING,
  FieldType.FIELD_TYPE_INT,
  FieldType.FIELD_TYPE_DOUBLE,
  FieldType.FIELD_TYPE_TIMESTAMP,
  FieldType.FIELD_TYPE_BYTES,
]);

/**
 * A string that is equal for equal values of the same type and different otherwise: the key of the
 * indexes. Nested tuples are not indexed (undefined).
 */
export function valueKey(v: Value | undefined): string | undefined {
  const k = v?.kind;
  if (!k) return 'n';
  switch (k.$case) {
    case 'stringValue':
      return `s${k.stringValue}`;
    case 'intValue':
      return `i${k.intValue}`;
    case 'doubleValue':
      return `d${Object.is(k.doubleValue, -0) ? 0 : k.doubleValue}`;
    case 'boolValue':
      return k.boolValue ? 'b1' : 'b0';
    case 'bytesValue':
      return `y${k.bytesValue.toString('base64')}`;
    case 'timestampValue':
      return `t${k.timestampValue}`;
    case 'nullValue':
      return 'n';
    case 'tupleValue':
      return undefined;
  }
}

/** The number an int, double or timestamp value holds (NaN for other kinds). */
function numberOf(v: Value | undefined): number {
  const k = v?.kind;
  if (k?.$case === 'intValue') return k.intValue;
  if (k?.$case === 'doubleValue') return k.doubleValue;
  if (k?.$case === 'timestampValue') return k.timestampValue;
  return Number.NaN;
}

/** Orders two values of the same ordered type; NaN when they cannot be compared. */
function compare(a: Value | undefined, b: Value): number {
  const x = a?.kind;
  const y = b.kind;
  if (!x || !y || x.$case !== y.$case) return Number.NaN;
  switch (x.$case) {
    case 'stringValue':
      return x.stringValue < (y as typeof x).stringValue
        ? -1
        : x.stringValue > (y as typeof x).stringValue
          ? 1
          : 0;
    case 'bytesValue':
      return Buffer.compare(x.bytesValue, (y as typeof x).bytesValue);
    case 'intValue':
    case 'doubleValue':
    case 'timestampValue': {
      const p = numberOf(a);
      const q = numberOf(b);
      return p < q ? -1 : p > q ? 1 : 0;
    }
    default:
      return Number.NaN;
  }
}

export function valuesEqual(a: Value | undefined, b: Value | undefined): boolean {
  const x = a?.kind;
  const y = b?.kind;
  if (!x || !y) return (x?.$case ?? 'nullValue') === (y?.$case ?? 'nullValue');
  if (x.$case !== y.$case) return false;
  if (x.$case === 'tupleValue') {
    const s = (y as typeof x).tupleValue.fields;
    const t = x.tupleValue.fields;
    return (
      s.length === t.length &&
      t.every((f, i) => f.name === (s[i] as Field).name && valuesEqual(f.value, (s[i] as Field).value))
    );
  }
  return valueKey(a) === valueKey(b);
}

function fieldMatches(m: Matcher, v: Value | undefined): boolean {
  const k = m.kind;
  if (!k) return false;
  switch (k.$case) {
    case 'any':
      return true;
    case 'actual':
      return valuesEqual(k.actual, v);
    case 'formal':
      return typeOf(v) === k.formal;
    case 'prefix':
      return v?.kind?.$case === 'stringValue' && v.kind.stringValue.startsWith(k.prefix);
    case 'range': {
      const r = k.range;
      if (r.gt && !(compare(v, r.gt) > 0)) return false;
      if (r.ge && !(compare(v, r.ge) >= 0)) return false;
      if (r.lt && !(compare(v, r.lt) < 0)) return false;
      if (r.le && !(compare(v, r.le) <= 0)) return false;
      return true;
    }
  }
}

export function isNamedQuery(t: Template): boolean {
  return t.fields.length > 0 && t.fields.every((m) => m.name !== '');
}

/** The field of `t` named `name` (the first, when several share it). */
export function fieldNamed(t: Tuple, name: string): Field | undefined {
  return t.fields.find((f) => f.name === name);
}

/**
 * Does the tuple match the template? Positional: same arity, field by field. Named: every matcher holds
 * for the tuple's field of that name (a tuple without the name does not match).
 */
export function matches(template: Template, tuple: Tuple): boolean {
  if (isNamedQuery(template)) {
    for (const m of template.fields) {
      const f = fieldNamed(tuple, m.name);
      if (!f || !fieldMatches(m, f.value)) return false;
    }
    return true;
  }
  if (template.fields.length !== tuple.fields.length) return false;
  for (let i = 0; i < template.fields.length; i++) {
    if (!fieldMatches(template.fields[i] as Matcher, (tuple.fields[i] as Field).value)) return false;
  }
  return true;
}

/**
 * Positional fields a space indexes: the first always, the next ones up to this count when their value
 * is short. A template whose only actual values sit in later fields (('w', run, i) among 100,000 tuples
 * that all start with 'w') is then answered from a posting instead of a scan of the arity.
 */
export const INDEXED_POSITIONS = 8;
/** Longer values (after the first field) are not indexed; a template with such a value scans. */
export const MAX_INDEXED_VALUE_KEY = 256;

/** The index key of a positional field whose value key is `k`, or undefined when it is not indexed. */
function positionalKey(arity: number, position: number, k: string | undefined): string | undefined {
  if (k === undefined || position >= INDEXED_POSITIONS) return undefined;
  if (position === 0) return `f${arity}:${k}`;
  return k.length <= MAX_INDEXED_VALUE_KEY ? `p${arity}:${position}:${k}` : undefined;
}

export const namedKey = (name: string, vk: string) => `n${name.length}:${name}${vk}`;

/**
 * Index keys a template can be answered from: the values of its actual positional fields (positional
 * templates) or of its named fields (named queries). The caller uses the smallest posting.
 */
export function indexKeysOf(template: Template): string[] {
  const keys: string[] = [];
  const named = isNamedQuery(template);
  const arity = template.fields.length;
  template.fields.forEach((m, position) => {
    if (m.kind?.$case !== 'actual') return;
    const vk = valueKey(m.kind.actual);
    if (named) {
      if (vk !== undefined) keys.push(namedKey(m.name, vk));
      return;
    }
    const k = positionalKey(arity, position, vk);
    if (k !== undefined) keys.push(k);
  });
  return keys;
}

/** The index keys a stored tuple is filed under. */
export function indexKeysOfTuple(t: Tuple): string[] {
  const keys: string[] = [];
  const arity = t.fields.length;
  const seen = new Set<string>();
  t.fields.forEach((f, position) => {
    // one value key per field, for its positional and its named posting
    const vk = valueKey(f.value);
    const pk = positionalKey(arity, position, vk);
    if (pk !== undefined) keys.push(pk);
    if (f.name === '' || seen.has(f.name)) return;
    seen.add(f.name);
    if (vk !== undefined) keys.push(namedKey(f.name, vk));
  });
  return keys;
}
