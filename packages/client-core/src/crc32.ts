/**
 * crc32Combine(crcA, crcB, lengthB): the CRC-32 of A followed by B, from the CRCs of A and B alone (zlib's
 * crc32_combine, which Node does not expose). A stream checked chunk by chunk then needs no second pass to
 * know the CRC of the whole.
 */

const GF2_DIM = 32;

function gf2MatrixTimes(mat: Uint32Array, vec: number): number {
  let sum = 0;
  let i = 0;
  while (vec !== 0) {
    if (vec & 1) sum ^= mat[i] as number;
    vec >>>= 1;
    i++;
  }
  return sum >>> 0;
}

function gf2MatrixSquare(square: Uint32Array, mat: Uint32Array): void {
  for (let n = 0; n < GF2_DIM; n++) square[n] = gf2MatrixTimes(mat, mat[n] as number);
}

export function crc32Combine(crc1: number, crc2: number, len2: number): number {
  if (len2 <= 0) return crc1 >>> 0;
  const even = new Uint32Array(GF2_DIM);
  const odd = new Uint32Array(GF2_DIM);
  odd[0] = 0xedb88320; // the CRC-32 polynomial, reflected
  let row = 1;
  for (let n = 1; n < GF2_DIM; n++) {
    odd[n] = row;
    row <<= 1;
  }
  gf2MatrixSquare(even, odd); // two zero bits
  gf2MatrixSquare(odd, even); // four zero bits
  let c1 = crc1 >>> 0;
  let len = len2;
  do {
    gf2MatrixSquare(even, odd);
    if (len % 2) c1 = gf2MatrixTimes(even, c1);
    len = Math.floor(len / 2);
    if (len === 0) break;
    gf2MatrixSquare(odd, even);
    if (len % 2) c1 = gf2MatrixTimes(odd, c1);
    len = Math.floor(len / 2);
  } while (len !== 0);
  return (c1 ^ crc2) >>> 0;
}
