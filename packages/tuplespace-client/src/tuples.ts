import {
  type Field,
  FieldType,
  type Matcher,
  type Range,
  type Template,
  type Tuple,
  type TupleRecord,
  type Value,
} from '@backplane/proto/tuplespace';

export type { Field, Matcher, Template, Tuple, TupleRecord, Value };

/** A JS value that maps to a field type: string, integer number (int), other number (double), bigint
 * (int), boolean, Buffer (bytes), Date (timestamp), null, or a nested Tuple / array of such values. */
export type JsValue = string | number | bigint | boolean | Buffer | Date | null | Tuple | JsValue[];

const isTuple = (v: unknown): v is Tuple =>
  typeof v === 'object' && v !== null && Array.isArray((v as Tuple).fields) && !Buffer.isBuffer(v);

/** The typed value of a JS value (integral numbers are ints: use V.double(x) for an integral double). */
export function toValue(v: JsValue): Value {
  if (v === null) return { kind: { $case: 'nullValue', nullValue: true } };
  if (typeof v === 'string') return { kind: { $case: 'stringValue', stringValue: v } };
  if (typeof v === 'boolean') return { kind: { $case: 'boolValue', boolValue: v } };
  if (typeof v === 'bigint') return { kind: { $case: 'intValue', intValue: Number(v) } };
  if (typeof v === 'number')
    return Number.isInteger(v)
      ? { kind: { $case: 'intValue', intValue: v } }
      : { kind: { $case: 'doubleValue', doubleValue: v } };
  if (Buffer.isBuffer(v)) return { kind: { $case: 'bytesValue', bytesValue: v } };
  if (v instanceof Date) return { kind: { $case: 'timestampValue', timestampValue: v.getTime() } };
  if (Array.isArray(v)) return { kind: { $case: 'tupleValue', tupleValue: tuple(...v) } };
  if (isTuple(v)) return { kind: { $case: 'tupleValue', tupleValue: v } };
  throw new TypeError(`no tuple field type for ${typeof v}`);
}

/** Explicitly typed values. */
export const V = {
  string: (s: string): Value => ({ kind: { $case: 'stringValue', stringValue: s } }),
  int: (n: number | bigint): Value => ({ kind: { $case: 'intValue', intValue: Number(n) } }),
  double: (n: number): Value => ({ kind: { $case: 'doubleValue', doubleValue: n } }),
  bool: (b: boolean): Value => ({ kind: { $case: 'boolValue', boolValue: b } }),
  bytes: (b: Buffer): Value => ({ kind: { $case: 'bytesValue', bytesValue: b } }),
  timestamp: (t: Date | number): Value => ({
    kind: { $case: 'timestampValue', timestampValue: typeof t === 'number' ? t : t.getTime() },
  }),
  null: (): Value => ({ kind: { $case: 'nullValue', nullValue: true } }),
};

const isValue = (v: unknown): v is Value =>
  typeof v === 'object' && v !== null && 'kind' in v && !Buffer.isBuffer(v) && !(v instanceof Date);
const isField = (v: unknown): v is Field =>
  typeof v === 'object' && v !== null && 'name' in v && 'value' in v && isValue((v as Field).value);

/** A named field. */
export function named(name: string, v: JsValue | Value): Field {
  return { name, value: isValue(v) ? v : toValue(v) };
}

/** A tuple from JS values, typed Values or named Fields: tuple('job', 42, named('owner', 'ann')). */
export function tuple(...items: Array<JsValue | Value | Field>): Tuple {
  return {
    fields: items.map((v) =>
      isField(v) ? v : isValue(v) ? { name: '', value: v } : { name: '', value: toValue(v as JsValue) },
    ),
  };
}

/** The JS value of a field value (ints and timestamps as number / Date). */
export function fromValue(v: Value | undefined): JsValue {
  const k = v?.kind;
  if (!k) return null;
  switch (k.$case) {
    case 'stringValue':
      return k.stringValue;
    case 'intValue':
      return k.intValue;
    case 'doubleValue':
      return k.doubleValue;
    case 'boolValue':
      return k.boolValue;
    case 'bytesValue':
      return k.bytesValue;
    case 'timestampValue':
      return new Date(k.timestampValue);
    case 'tupleValue':
      return values(k.tupleValue);
    case 'nullValue':
      return null;
  }
}

/** The JS values of a tuple's fields, in order. */
export function values(t: Tuple | undefined): JsValue[] {
  return (t?.fields ?? []).map((f) => fromValue(f.value));
}

/** A tuple's named fields as an object. */
export function fieldsByName(t: Tuple | undefined): Record<string, JsValue> {
  const out: Record<string, JsValue> = {};
  for (const f of t?.fields ?? []) if (f.name && !(f.name in out)) out[f.name] = fromValue(f.value);
  return out;
}

export type TypeName = 'string' | 'int' | 'double' | 'bool' | 'bytes' | 'timestamp' | 'tuple' | 'null';
const TYPES: Record<TypeName, FieldType> = {
  string: FieldType.FIELD_TYPE_STRING,
  int: FieldType.FIELD_TYPE_INT,
  double: FieldType.FIELD_TYPE_DOUBLE,
  bool: FieldType.FIELD_TYPE_BOOL,
  bytes: FieldType.FIELD_TYPE_BYTES,
  timestamp: FieldType.FIELD_TYPE_TIMESTAMP,
  tuple: FieldType.FIELD_TYPE_TUPLE,
  null: FieldType.FIELD_TYPE_NULL,
};

const bound = (v: JsValue | Value): Value => (isValue(v) ? v : toValue(v));
const range = (r: Range): Matcher => ({ name: '', kind: { $case: 'range', range: r } });

/** Field matchers for templates. */
export const M = {
  /** Equal values of the same type. */
  actual: (v: JsValue | Value): Matcher => ({ name: '', kind: { $case: 'actual', actual: bound(v) } }),
  /** Any value of this type (a formal). */
  formal: (type: TypeName): Matcher => ({ name: '', kind: { $case: 'formal', formal: TYPES[type] } }),
  /** Anything. */
  any: (): Matcher => ({ name: '', kind: { $case: 'any', any: true } }),
  lt: (v: JsValue | Value) => range({ lt: bound(v) }),
  le: (v: JsValue | Value) => range({ le: bound(v) }),
  gt: (v: JsValue | Value) => range({ gt: bound(v) }),
  ge: (v: JsValue | Value) => range({ ge: bound(v) }),
  /** low ≤ value ≤ high. */
  between: (low: JsValue | Value, high: JsValue | Value) => range({ ge: bound(low), le: bound(high) }),
  prefix: (p: string): Matcher => ({ name: '', kind: { $case: 'prefix', prefix: p } }),
  /** Applies `m` to the field called `name` (a template of named matchers is a named query). */
  named: (name: string, m: Matcher | JsValue): Matcher => ({ ...(isMatcher(m) ? m : M.actual(m)), name }),
};

function isMatcher(v: unknown): v is Matcher {
  return typeof v === 'object' && v !== null && 'kind' in v && 'name' in v && !('value' in v);
}

/** Template items: a Matcher, a JS value (an actual), a type constructor (String, Number, Boolean, Buffer,
 * Date: a formal) or undefined (a wildcard). */
export type TemplateItem =
  | Matcher
  | JsValue
  | undefined
  | StringConstructor
  | NumberConstructor
  | BooleanConstructor
  | BufferConstructor
  | DateConstructor;

function matcherOf(item: TemplateItem): Matcher {
  if (item === undefined) return M.any();
  if (item === String) return M.formal('string');
  if (item === Number) return M.formal('int');
  if (item === Boolean) return M.formal('bool');
  if (item === Buffer) return M.formal('bytes');
  if (item === Date) return M.formal('timestamp');
  if (isMatcher(item)) return item;
  return M.actual(item as JsValue);
}

/** template('job', String, M.gt(3), undefined): an actual, a formal, a range and a wildcard. */
export function template(...items: TemplateItem[]): Template {
  return { fields: items.map(matcherOf) };
}

/** A named query: where({ kind: 'job', priority: M.gt(3) }). */
export function where(fields: Record<string, TemplateItem>): Template {
  return { fields: Object.entries(fields).map(([name, item]) => ({ ...matcherOf(item), name })) };
}
