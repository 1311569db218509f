import type { Change, ChangeKind, Entry } from './engine';

/** What a properties snapshot holds. */
export interface PropertiesState {
  revision: number;
  compacted: number;
  entries: Iterable<Entry>;
  history: Change[];
}

/** 'BPS' and the format's version; a snapshot of version 1 (JSON) starts with '{'. */
const MAGIC = Buffer.from('BPS2');
const KINDS: ChangeKind[] = ['PUT', 'DELETE', 'EXPIRE'];

/**
 * The properties' state as bytes: a header, then every entry and every change of the history as
 * length-prefixed fields, numbers as doubles (revisions and times are integers below 2^53). A few
 * times faster to write and read than JSON with base64 values, and a third smaller.
 */
export function encodeSnapshot(state: PropertiesState, history: { from: number }): Buffer {
  const entries = [...state.entries];
  const changes = state.history;
  let size = MAGIC.length + 8 * 2 + 4 * 2;
  for (const e of entries) size += 4 + Buffer.byteLength(e.key) + 4 + e.value.byteLength + 8 * 3;
  for (let i = history.from; i < changes.length; i++) {
    const c = changes[i] as Change;
    size += 1 + 4 + Buffer.byteLength(c.key) + 8 * 3 + 4 + (c.value?.byteLength ?? 0);
  }
  const out = Buffer.allocUnsafe(size);
  let at = MAGIC.copy(out, 0);
  const num = (n: number) => {
    at = out.writeDoubleLE(n, at);
  };
  const bytes = (b: Uint8Array) => {
    at = out.writeUInt32LE(b.byteLength, at);
    out.set(b, at);
    at += b.byteLength;
  };
  const text = (s: string) => {
    const n = out.write(s, at + 4, 'utf8');
    out.writeUInt32LE(n, at);
    at += 4 + n;
  };
  num(state.revision);
  num(state.compacted);
  at = out.writeUInt32LE(entries.length, at);
  for (const e of entries) {
    text(e.key);
    bytes(e.value);
    num(e.revision);
    num(e.createRevision);
    num(e.expiresAt);
  }
  at = out.writeUInt32LE(changes.length - history.from, at);
  for (let i = history.from; i < changes.length; i++) {
    const c = changes[i] as Change;
    at = out.writeUInt8(KINDS.indexOf(c.kind), at);
    text(c.key);
    num(c.revision);
    num(c.createRevision ?? 0);
    num(c.expiresAt);
    bytes(c.value ?? EMPTY);
  }
  return out;
}

const EMPTY = new Uint8Array(0);

/** Reads a snapshot of either format (version 1 was JSON with base64 values). */
export function decodeSnapshot(data: Uint8Array): PropertiesState & { entries: Entry[] } {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (b[0] === 0x7b) return decodeJson(b);
  if (!b.subarray(0, MAGIC.length).equals(MAGIC))
    throw new Error(`a properties snapshot in an unknown format (${b.subarray(0, 4).toString('hex')})`);
  let at = MAGIC.length;
  const num = () => {
    const n = b.readDoubleLE(at);
    at += 8;
    return n;
  };
  const u32 = () => {
    const n = b.readUInt32LE(at);
    at += 4;
    return n;
  };
  // values are copied out, so the snapshot's buffer is not kept alive by one small value
  const bytes = () => {
    const n = u32();
    const v = Buffer.from(b.subarray(at, at + n));
    at += n;
    return v;
  };
  const text = () => {
    const n = u32();
    const s = b.toString('utf8', at, at + n);
    at += n;
    return s;
  };
  const revision = num();
  const compacted = num();
  const entries: Entry[] = [];
  for (let i = u32(); i > 0; i--) {
    const key = text();
    const value = bytes();
    entries.push({ key, value, revision: num(), createRevision: num(), expiresAt: num() });
  }
  const history: Change[] = [];
  for (let i = u32(); i > 0; i--) {
    const kind = KINDS[b.readUInt8(at++)] as ChangeKind;
    const key = text();
    const rev = num();
    const createRevision = num();
    const expiresAt = num();
    const value = bytes();
    history.push({
      kind,
      key,
      revision: rev,
      expiresAt,
      ...(kind === 'PUT' ? { createRevision, value } : {}),
    });
  }
  return { revision, compacted, entries, history };
}

function decodeJson(b: Buffer): PropertiesState & { entries: Entry[] } {
  const s = JSON.parse(b.toString()) as {
    v: number;
    revision: number;
    compacted: number;
    entries: Array<[string, string, number, number, number]>;
    history: Array<[ChangeKind, string, number, number, number, string | null]>;
  };
  if (s.v !== 1) throw new Error(`a properties snapshot of version ${s.v}: this node knows 1 and 2`);
  return {
    revision: s.revision,
    compacted: s.compacted,
    entries: s.entries.map(([key, value, revision, createRevision, expiresAt]) => ({
      key,
      value: Buffer.from(value, 'base64'),
      revision,
      createRevision,
      expiresAt,
    })),
    history: s.history.map(([kind, key, revision, createRevision, expiresAt, value]) => ({
      kind,
      key,
      revision,
      expiresAt,
      ...(kind === 'PUT' ? { createRevision, value: Buffer.from(value ?? '', 'base64') } : {}),
    })),
  };
}
