import { BackplaneError } from '@backplane/runtime';

/** Documented limits (README, sharing.proto). */
export const LIMITS = {
  keyLength: 512,
  topicLength: 256,
  /** Fits a NATS message (1 MiB max_payload) with its headers. */
  valueBytes: 1_000_000,
  eventBytes: 1_000_000,
  pageSize: 1000,
  defaultPageSize: 100,
  txnOps: 1000,
  /** Longest time to live (one year). */
  ttlMs: 365 * 86_400_000,
} as const;

const TOKEN = /^[A-Za-z0-9_\-/=]+$/;

function tokens(what: string, s: string, max: number, reason: string): string[] {
  if (typeof s !== 'string' || s.length === 0 || s.length > max)
    throw BackplaneError.badParameter(`a ${what} is 1-${max} characters, got ${s.length}`, { reason });
  const parts = s.split('.');
  return parts.map((t) => {
    if (t.length === 0)
      throw BackplaneError.badParameter(
        `${what} ${JSON.stringify(s)} has an empty token ('.' at an end or '..')`,
        {
          reason,
        },
      );
    return t;
  });
}

/** A key or topic: tokens of A-Z a-z 0-9 - _ / = separated by '.' (also a NATS KV key / subject). */
function validateName(what: 'key' | 'topic', s: string, max: number, reason: string): string {
  for (const t of tokens(what, s, max, reason))
    if (!TOKEN.test(t))
      throw BackplaneError.badParameter(
        `${what} ${JSON.stringify(s)}: ${what}s use A-Z a-z 0-9 - _ / = and '.' between tokens`,
        { reason },
      );
  return s;
}

/** Keys: tokens of A-Z a-z 0-9 - _ / = separated by '.' (also valid NATS KV keys). */
export const validateKey = (key: string): string => validateName('key', key, LIMITS.keyLength, 'BAD_KEY');

/** A List/Watch prefix: "" or the start of a key (may end with '.'). */
export function validatePrefix(prefix: string): string {
  if (prefix === '') return prefix;
  if (prefix.length > LIMITS.keyLength || !/^[A-Za-z0-9_\-/=.]+$/.test(prefix) || /^\.|\.\./.test(prefix))
    throw BackplaneError.badParameter(`prefix ${JSON.stringify(prefix)} is not the start of a key`, {
      reason: 'BAD_KEY',
    });
  return prefix;
}

/** A topic to publish on: like a key, no wildcards. */
export const validateTopic = (topic: string): string =>
  validateName('topic', topic, LIMITS.topicLength, 'BAD_TOPIC');

/** A subscription: a topic whose tokens may be '*' (any one token) or, last, '>' (the rest). */
export function validatePattern(pattern: string): string {
  const parts = tokens('topic', pattern, LIMITS.topicLength, 'BAD_TOPIC');
  parts.forEach((t, i) => {
    const ok = TOKEN.test(t) || t === '*' || (t === '>' && i === parts.length - 1);
    if (!ok)
      throw BackplaneError.badParameter(
        `topic pattern ${JSON.stringify(pattern)}: a token is a word, '*', or a final '>'`,
        { reason: 'BAD_TOPIC' },
      );
  });
  return pattern;
}

/** NATS subject matching: '*' one token, '>' one or more trailing tokens. */
export function topicMatches(pattern: string, topic: string): boolean {
  if (pattern === topic) return true;
  const p = pattern.split('.');
  const t = topic.split('.');
  for (let i = 0; i < p.length; i++) {
    const tok = p[i];
    if (tok === '>') return t.length > i;
    if (i >= t.length) return false;
    if (tok !== '*' && tok !== t[i]) return false;
  }
  return p.length === t.length;
}

export function validateValue(value: Uint8Array): Uint8Array {
  if (value.length > LIMITS.valueBytes)
    throw BackplaneError.of(
      'RESOURCE_EXHAUSTED',
      `a value is at most ${LIMITS.valueBytes} bytes, got ${value.length}`,
      { reason: 'VALUE_TOO_LARGE' },
    );
  return value;
}

export function validateTtl(ttlMs: number): number {
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 0 || ttlMs > LIMITS.ttlMs)
    throw BackplaneError.badParameter(`ttl_ms is 0 (none) .. ${LIMITS.ttlMs}, got ${ttlMs}`, {
      reason: 'BAD_TTL',
    });
  return ttlMs;
}

/** A page token is the last key of the previous page, base64url-encoded. */
export const pageToken = {
  encode: (lastKey: string) => Buffer.from(lastKey).toString('base64url'),
  decode(token: string): string {
    if (!token) return '';
    const key = Buffer.from(token, 'base64url').toString();
    try {
      return validateKey(key);
    } catch {
      throw BackplaneError.badParameter('page_token is not one this service returned', {
        reason: 'BAD_PAGE_TOKEN',
      });
    }
  },
};
