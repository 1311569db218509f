import { createHash, randomBytes } from 'node:crypto';
import { BackplaneError, secretsEqual } from '@backplane/runtime';

export type CapKind = 'READ' | 'WRITE' | 'MANAGE';
export const CAP_KINDS: readonly CapKind[] = ['READ', 'WRITE', 'MANAGE'];

/** A parsed capability: `ibp://host:port/<id>#<key>/<KIND>`. */
export interface Capability {
  host: string;
  port: number;
  id: string;
  key: string;
  kind: CapKind;
}

/** 128-bit allocation ids and 256-bit keys, base64url. */
export const newAllocationId = (): string => randomBytes(16).toString('base64url');
export const newKey = (): string => randomBytes(32).toString('base64url');

/** The depot stores only this: a copy of its database grants no access. */
export const hashKey = (key: string): string => createHash('sha256').update(key).digest('base64url');

export function formatCapability(host: string, port: number, id: string, key: string, kind: CapKind): string {
  const h = host.includes(':') ? `[${host}]` : host;
  return `ibp://${h}:${port}/${id}#${key}/${kind}`;
}

const CAP_RE =
  /^ibp:\/\/(\[[^\]]+\]|[^/:[\]]+):(\d{1,5})\/([A-Za-z0-9_-]{22})#([A-Za-z0-9_-]{43})\/(READ|WRITE|MANAGE)$/;

/** Parses a capability string; anything else is INVALID_ARGUMENT with what a capability looks like. */
export function parseCapability(raw: string, what = 'capability'): Capability {
  if (raw.length === 0) throw BackplaneError.badParameter(`${what} is required`);
  const m = raw.length <= 400 ? CAP_RE.exec(raw) : null;
  if (!m) {
    throw BackplaneError.badParameter(
      `${what} is not an IBP capability (expected ibp://host:port/<22-char id>#<43-char key>/READ|WRITE|MANAGE)`,
      { reason: 'IBP_E_WRONG_CAP_FORMAT' },
    );
  }
  const host = (m[1] as string).replace(/^\[|\]$/g, '');
  return { host, port: Number(m[2]), id: m[3] as string, key: m[4] as string, kind: m[5] as CapKind };
}

/** Constant-time check of a presented key against the stored hash. */
export function keyMatches(key: string, storedHash: string): boolean {
  return secretsEqual(hashKey(key), storedHash);
}
