import { FieldType, type Matcher, type Template, type Tuple, type Value } from '@backplane/proto/tuplespace';
import { status } from '@grpc/grpc-js';
import { TupleDB } from '../src/tsdb';
import { LIMITS, matches, validateTemplate, validateTuple } from '../src/tuple';

const s = (v: string): Value => ({ kind: { $case: 'stringValue', stringValue: v } });
const i = (v: number): Value => ({ kind: { $case: 'intValue', intValue: v } });
const d = (v: number): Value => ({ kind: { $case: 'doubleValue', doubleValue: v } });
const ts = (v: number): Value => ({ kind: { $case: 'timestampValue', timestampValue: v } });
const t = (...vs: Value[]): Tuple => ({ fields: vs.map((value) => ({ name: '', value })) });
const actual = (v: Value, name = ''): Matcher => ({ name, kind: { $case: 'actual', actual: v } });
const formal = (f: FieldType, name = ''): Matcher => ({ name, kind: { $case: 'formal', formal: f } });
const any: Matcher = { name: '', kind: { $case: 'any', any: true } };
const tpl = (...fields: Matcher[]): Template => ({ fields });

describe('template matching', () => {
  it('matches actuals by type and value, formals by type, wildcards by anything, same arity only', () => {
    const tuple = t(s('job'), i(7), d(1.5));
    expect(matches(tpl(actual(s('job')), actual(i(7)), actual(d(1.5))), tuple)).toBe(true);
    expect(matches(tpl(actual(s('job')), actual(d(7)), any), tuple)).toBe(false); // 7.0 is not the int 7
    expect(matches(tpl(actual(s('job')), formal(FieldType.FIELD_TYPE_INT), any), tuple)).toBe(true);
    expect(matches(tpl(actual(s('job')), formal(FieldType.FIELD_TYPE_STRING), any), tuple)).toBe(false);
    expect(matches(tpl(any, any), tuple)).toBe(false);
    expect(matches(tpl(any, any, any), tuple)).toBe(true);
  });

  it('matches named queries by field name regardless of position and arity', () => {
    const tuple: Tuple = {
      fields: [
        { name: 'kind', value: s('job') },
        { name: 'prio', value: i(3) },
        { name: '', value: s('extra') },
      ],
    };
    expect(matches(tpl(actual(i(3), 'prio')), tuple)).toBe(true);
    expect(matches(tpl(actual(i(3), 'prio'), actual(s('job'), 'kind')), tuple)).toBe(true);
    expect(matches(tpl(actual(i(4), 'prio')), tuple)).toBe(false);
    expect(matches(tpl(actual(i(3), 'missing')), tuple)).toBe(false);
  });

  it('matches ranges and prefixes (the seed StaleTimestamp: any earlier timestamp)', () => {
    const range = (r: object, name = ''): Matcher => ({ name, kind: { $case: 'range', range: r } });
    expect(matches(tpl(range({ lt: ts(1000) })), t(ts(999)))).toBe(true);
    expect(matches(tpl(range({ lt: ts(1000) })), t(ts(1000)))).toBe(false);
    expect(matches(tpl(range({ le: ts(1000) })), t(ts(1000)))).toBe(true);
    expect(matches(tpl(range({ ge: i(2), le: i(4) })), t(i(3)))).toBe(true);
    expect(matches(tpl(range({ ge: i(2), le: i(4) })), t(i(5)))).toBe(false);
    expect(matches(tpl(range({ gt: s('b') })), t(s('c')))).toBe(true);
    expect(matches(tpl(range({ gt: i(1) })), t(s('c')))).toBe(false); // other types never compare
    expect(matches(tpl({ name: '', kind: { $case: 'prefix', prefix: 'jo' } }), t(s('job')))).toBe(true);
    expect(matches(tpl({ name: '', kind: { $case: 'prefix', prefix: 'jo' } }), t(i(1)))).toBe(false);
  });

  it('refuses malformed tuples and templates with INVALID_ARGUMENT', () => {
    const bad = (fn: () => unknown) =>
      expect(fn).toThrow(expect.objectContaining({ code: status.INVALID_ARGUMENT }));
    bad(() => validateTuple({ fields: [{ name: '', value: undefined }] }));
    bad(() => validateTuple(t(d(Number.NaN))));
    bad(() =>
      validateTuple({
        fields: Array.from({ length: LIMITS.maxFields + 1 }, () => ({ name: '', value: i(1) })),
      }),
    );
    bad(() =>
      validateTuple(t({ kind: { $case: 'bytesValue', bytesValue: Buffer.alloc(LIMITS.maxTupleBytes + 1) } })),
    );
    let deep: Tuple = t(i(1));
    for (let n = 0; n < LIMITS.maxDepth + 2; n++)
      deep = t({ kind: { $case: 'tupleValue', tupleValue: deep } });
    bad(() => validateTuple(deep));
    bad(() => validateTemplate(tpl({ name: '', kind: undefined })));
    bad(() => validateTemplate(tpl(actual(s('x'), 'named'), actual(s('y')))));
    bad(() => validateTemplate(tpl({ name: '', kind: { $case: 'range', range: {} } })));
    bad(() => validateTemplate(tpl({ name: '', kind: { $case: 'range', range: { lt: i(1), gt: s('a') } } })));
    bad(() => validateTemplate(tpl(formal(99 as FieldType))));
  });
});

describe('TupleDB', () => {
  it('answers an indexed template from its posting and a non-indexed one in write order', () => {
    const db = new TupleDB();
    for (let n = 0; n < 1000; n++)
      db.insert({ id: db.nextId, tuple: t(s(`k${n % 10}`), i(n)), expiresAt: 0 });
    const hits = db.find(tpl(actual(s('k3')), any), undefined, Date.now());
    expect(hits).toHaveLength(100);
    expect(hits.map((e) => e.id)).toEqual([...hits.map((e) => e.id)].sort((a, b) => a - b));
    expect(
      db.first(tpl(formal(FieldType.FIELD_TYPE_STRING), actual(i(500))), undefined, Date.now())?.id,
    ).toBe(501);
    db.remove(4); // ("k3", 3)
    expect(db.first(tpl(actual(s('k3')), any), undefined, Date.now())?.id).toBe(14);
    db.replace(14, t(s('other'), i(0)), 0);
    expect(db.first(tpl(actual(s('k3')), any), undefined, Date.now())?.id).toBe(24);
    expect(db.first(tpl(actual(s('other')), any), undefined, Date.now())?.id).toBe(14);
  });

  it('answers a template whose only actuals are in later fields from a posting, not a scan', () => {
    const db = new TupleDB();
    for (let n = 0; n < 2000; n++)
      db.insert({ id: db.nextId, tuple: t(s('w'), i(n % 7), i(n)), expiresAt: 0 });
    const candidates = (template: Template) => [...db['candidates'](template)].length;
    const key = tpl(actual(s('w')), actual(i(1234 % 7)), actual(i(1234)));
    expect(db.first(key, undefined, Date.now())?.id).toBe(1235);
    expect(candidates(key)).toBe(1); // the third field's posting
    expect(candidates(tpl(any, actual(i(3)), any))).toBe(286); // the second field's
    expect(candidates(tpl(actual(s('w')), any, any))).toBe(2000);
    // a value not stored at that position finds nothing, without a scan
    expect(candidates(tpl(any, actual(i(7)), any))).toBe(0);
    db.remove(1235);
    expect(db.first(key, undefined, Date.now())).toBeUndefined();
    db.replace(1236, t(s('w'), i(0), i(1234)), 0);
    expect(db.first(key, undefined, Date.now())).toBeUndefined(); // 1234 % 7 is 2, not 0
    expect(db.first(tpl(any, actual(i(0)), actual(i(1234))), undefined, Date.now())?.id).toBe(1236);
  });

  it('leaves long values after the first field and fields past the eighth out of the index, still matching them', () => {
    const db = new TupleDB();
    const long = 'x'.repeat(1000);
    const wide = (n: number) =>
      t(s('a'), s(long), ...Array.from({ length: 8 }, (_, k) => i(k === 7 ? n : 0)));
    for (let n = 0; n < 50; n++) db.insert({ id: db.nextId, tuple: wide(n), expiresAt: 0 });
    const byLong = tpl(any, actual(s(long)), ...Array.from({ length: 8 }, () => any));
    expect(db.count(byLong, undefined, Date.now())).toBe(50);
    const byLast = tpl(any, any, ...Array.from({ length: 8 }, (_, k) => (k === 7 ? actual(i(42)) : any)));
    expect(db.first(byLast, undefined, Date.now())?.id).toBe(43);
  });

  it('hides expired tuples and those held by other transactions', () => {
    const db = new TupleDB();
    const now = Date.now();
    db.insert({ id: 1, tuple: t(s('a')), expiresAt: now - 1 });
    db.insert({ id: 2, tuple: t(s('a')), expiresAt: 0, writtenBy: 'T1' });
    db.insert({ id: 3, tuple: t(s('a')), expiresAt: 0, takenBy: 'T2' });
    expect(db.count(tpl(actual(s('a'))), undefined, now)).toBe(0);
    expect(db.count(tpl(actual(s('a'))), 'T1', now)).toBe(1);
    expect(db.popExpired(now).map((e) => e.id)).toEqual([1]);
  });
});
