import type { Random } from './random';

/** Values chosen to sit on the edges that parsers and limit checks get wrong. */
export const EDGE_INTEGERS: readonly bigint[] = [
  0n,
  1n,
  -1n,
  2n,
  127n,
  128n,
  255n,
  256n,
  1023n,
  1024n,
  65_535n,
  65_536n,
  1_048_576n,
  2n ** 31n - 1n,
  -(2n ** 31n),
  2n ** 32n - 1n,
  2n ** 32n,
  2n ** 53n - 1n,
  2n ** 53n + 1n,
  2n ** 63n - 1n,
  -(2n ** 63n),
  2n ** 64n - 1n,
];

export const EDGE_DOUBLES: readonly number[] = [
  0,
  -0,
  1,
  -1,
  0.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  -Number.MAX_VALUE,
  2 ** 53,
  1e-300,
];

const FIXED_STRINGS = [
  '',
  ' ',
  '*',
  '>',
  'a.*',
  'a.>',
  '.',
  '..',
  '/',
  '../../../../etc/passwd',
  '%s%s%s%n',
  "'; DROP TABLE x; --",
  '\u0000',
  'a\u0000b',
  '\r\n\r\n',
  '名前🚀',
  '\u202e\u0301',
  '-1',
  '0',
  '99999999999999999999999999',
  'NaN',
  'null',
  '{}',
  'ibp://',
  'ibp://127.0.0.1:1/x#y/READ',
  'ibp://127.0.0.1:6714/00000000000000000000000000000000#00000000000000000000000000000000/MANAGE',
  'ipv6://::ffff:127.0.0.1',
  'tcp://127.0.0.1:1',
  'boot@127.0.0.1:1',
  '127.0.0.1:0',
  '[::1]:99999',
  'localhost:-1',
  'http://169.254.169.254/latest/meta-data/',
];

const INVALID_UTF8 = [
  Buffer.from([0xff]),
  Buffer.from([0xc0, 0xaf]),
  Buffer.from([0xed, 0xa0, 0x80]),
  Buffer.from([0xf4, 0x90, 0x80, 0x80]),
  Buffer.from([0x61, 0xfe, 0x62]),
  Buffer.from([0xe2, 0x82]),
];

/** A hostile string field value, as bytes (so it can be invalid UTF-8). */
export function hostileString(
  rng: Random,
  corpus: readonly string[] | undefined,
  allowHuge: boolean,
): Buffer {
  if (corpus?.length && rng.chance(0.45)) {
    const base = rng.pick(corpus);
    // a valid value, or one bent slightly: a changed character, a suffix, a truncation
    const bend = rng.int(5);
    if (bend === 0 && base.length > 0) return Buffer.from(base.slice(0, rng.int(base.length)));
    if (bend === 1 && base.length > 0) {
      const i = rng.int(base.length);
      return Buffer.from(`${base.slice(0, i)}${rng.ascii(1)}${base.slice(i + 1)}`);
    }
    if (bend === 2) return Buffer.from(`${base}${rng.pick(['/', '#', '.x', '\u0000', '/READ', ' '])}`);
    return Buffer.from(base);
  }
  const kind = rng.int(10);
  if (kind <= 2) return Buffer.from(rng.pick(FIXED_STRINGS));
  if (kind === 3) return rng.pick(INVALID_UTF8);
  if (kind === 4) return Buffer.from(rng.ascii(200 + rng.int(5000)));
  if (kind === 5 && allowHuge && rng.chance(0.2)) return Buffer.alloc(65_536 + rng.int(1_000_000), 0x61);
  if (kind === 6) return Buffer.concat([Buffer.from(rng.ascii(1 + rng.int(8))), rng.pick(INVALID_UTF8)]);
  return Buffer.from(rng.ascii(1 + rng.int(24)));
}

export function hostileBytes(rng: Random, allowHuge: boolean): Buffer {
  const kind = rng.int(6);
  if (kind === 0) return Buffer.alloc(0);
  if (kind === 1 && allowHuge && rng.chance(0.3)) return rng.bytes(65_536 + rng.int(2_000_000));
  if (kind === 2) return rng.bytes(1 + rng.int(4096));
  return rng.bytes(rng.int(64));
}

export function hostileInteger(rng: Random): bigint {
  if (rng.chance(0.6)) return rng.pick(EDGE_INTEGERS);
  if (rng.chance(0.5)) return BigInt(rng.int(2000)) - 500n;
  return BigInt.asIntN(64, BigInt(`0x${rng.bytes(8).toString('hex')}`));
}

export function hostileDouble(rng: Random): number {
  if (rng.chance(0.6)) return rng.pick(EDGE_DOUBLES);
  return (rng.next() - 0.5) * 10 ** rng.int(20);
}
