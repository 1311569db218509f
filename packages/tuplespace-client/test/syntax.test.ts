import { FieldType } from '@backplane/proto/tuplespace';
import { formatTuple, parseTemplate, parseTuple, values } from '../src';

describe('tuple syntax', () => {
  it('reads and prints every field type, names and nesting', () => {
    const t = parseTuple(
      '("job", 42, -1.5, 2.0, true, null, @2026-01-01T00:00:00Z, b64:AAE=, (1, "x"), owner="ann")',
    );
    expect(values(t)).toEqual([
      'job',
      42,
      -1.5,
      2,
      true,
      null,
      new Date('2026-01-01T00:00:00Z'),
      Buffer.from([0, 1]),
      [1, 'x'],
      'ann',
    ]);
    expect(t.fields[3]?.value?.kind?.$case).toBe('doubleValue');
    expect(t.fields[9]?.name).toBe('owner');
    expect(parseTuple(formatTuple(t))).toEqual(t);
    expect(values(parseTuple('"a", 1'))).toEqual(['a', 1]);
    expect(parseTuple('()').fields).toEqual([]);
  });

  it('reads templates: actuals, wildcards, formals, ranges, prefixes and named queries', () => {
    const t = parseTemplate('("job", *, ?int, >3, <=@2026-01-01T00:00:00Z, 1..10, "pre"*)');
    expect(t.fields.map((m) => m.kind?.$case)).toEqual([
      'actual',
      'any',
      'formal',
      'range',
      'range',
      'range',
      'prefix',
    ]);
    expect(t.fields[2]?.kind).toEqual({ $case: 'formal', formal: FieldType.FIELD_TYPE_INT });
    const named = parseTemplate('kind="task", prio=>=2');
    expect(named.fields.map((m) => m.name)).toEqual(['kind', 'prio']);
  });

  it('says where it could not read', () => {
    expect(() => parseTuple('(job)')).toThrow(/strings need quotes/);
    expect(() => parseTuple('(1, 2')).toThrow(/expected , or \)/);
    expect(() => parseTemplate('(?float)')).toThrow(/unknown type/);
  });
});
