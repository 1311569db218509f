import { createHash, timingSafeEqual } from 'node:crypto';
import { BackplaneError } from '@backplane/client-core';
import type { CallContext } from './handlers';

/** Compares two secrets in constant time (the lengths are hidden by hashing first). */
export function secretsEqual(a: string, b: string): boolean {
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  return timingSafeEqual(da, db);
}

/**
 * The key to look a secret up by: its SHA-256. A map keyed by the secret itself compares the secret with
 * stored ones; keyed by the digest, a lookup's timing says nothing about the secret.
 */
export function secretKey(secret: string | Buffer): string {
  return createHash('sha256').update(secret).digest('base64url');
}

/** An authenticate hook that requires `authorization: Bearer <token>` on every call. */
export function bearerTokenAuth(token: string): (ctx: CallContext) => void {
  if (token.length < 16) throw new Error('an auth token must be at least 16 characters');
  return (ctx) => {
    const header = ctx.metadata.get('authorization')[0];
    const value = typeof header === 'string' ? header : '';
    const given = value.startsWith('Bearer ') ? value.slice(7) : '';
    if (!given) {
      throw BackplaneError.of('AUTHENTICATION_FAILED', 'missing "authorization: Bearer <token>" metadata');
    }
    if (!secretsEqual(given, token)) throw BackplaneError.of('AUTHENTICATION_FAILED', 'invalid bearer token');
  };
}
