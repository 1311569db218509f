import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { GroupCommitter } from '@backplane/runtime';
import { BackplaneError, type Store } from '@backplane/runtime';
import type { Permission, Principal } from './command';
import { keys } from './persistence';

const scryptAsync = promisify(scrypt) as (
  pw: string,
  salt: Buffer,
  len: number,
  opts: object,
) => Promise<Buffer>;
/** scrypt cost: N = 2^14, r = 8 (about 16 MiB and tens of ms per hash). */
const SCRYPT = { N: 16384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

export const ANONYMOUS: Principal = { user: 'anonymous', groups: [] };
/** Members of this group are server admins: ADMIN on every space, and user management. */
export const ADMIN_GROUP = 'admin';

interface UserRecord {
  name: string;
  salt: string;
  hash: string;
  groups: string[];
}

/** `principal` is a user name, `@group` or `*`. */
export interface AclEntry {
  principal: string;
  permissions: Permission[];
}

const USER_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const GROUP_NAME = /^[A-Za-z0-9._-]{1,64}$/;

export function validateAcl(acl: AclEntry[]): AclEntry[] {
  if (acl.length > 256) throw BackplaneError.badParameter('an ACL has at most 256 entries');
  for (const e of acl) {
    const p = e.principal;
    const ok = p === '*' || (p.startsWith('@') ? GROUP_NAME.test(p.slice(1)) : USER_NAME.test(p));
    if (!ok) throw BackplaneError.badParameter(`ACL principal ${JSON.stringify(p)}: a user, @group or *`);
  }
  return acl;
}

export function isServerAdmin(p: Principal): boolean {
  return p.groups.includes(ADMIN_GROUP);
}

/** What a principal may do in a space with this ACL (ADMIN includes READ and WRITE). */
export function permissionsOf(p: Principal, acl: AclEntry[]): Set<Permission> {
  if (isServerAdmin(p)) return new Set(['READ', 'WRITE', 'ADMIN']);
  const out = new Set<Permission>();
  for (const e of acl) {
    const applies =
      e.principal === '*' ||
      e.principal === p.user ||
      (e.principal.startsWith('@') && p.groups.includes(e.principal.slice(1)));
    if (applies) for (const perm of e.permissions) out.add(perm);
  }
  if (out.has('ADMIN')) {
    out.add('READ');
    out.add('WRITE');
  }
  return out;
}

/**
 * Users with scrypt-hashed passwords. A call authenticates with `authorization: Basic base64(user:pass)`;
 * a verified header is remembered (by its SHA-256, never in clear) so scrypt runs once per client, not
 * once per call; changing or deleting the user forgets it.
 */
export class Users {
  private readonly users = new Map<string, UserRecord>();
  private readonly verified = new Map<string, Principal>();

  constructor(
    private readonly store: Store,
    private readonly committer: GroupCommitter,
  ) {}

  async load(): Promise<void> {
    for await (const [, value] of this.store.iterator({ gte: 'u/', lt: 'u0' })) {
      const u = JSON.parse(value) as UserRecord;
      this.users.set(u.name, u);
    }
  }

  get size(): number {
    return this.users.size;
  }

  has(name: string): boolean {
    return this.users.has(name);
  }

  list(): Array<{ name: string; groups: string[] }> {
    return [...this.users.values()]
      .map((u) => ({ name: u.name, groups: u.groups }))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  async put(name: string, password: string, groups: string[]): Promise<void> {
    if (!USER_NAME.test(name) || name === ANONYMOUS.user)
      throw BackplaneError.badParameter('user names are 1-64 of A-Z a-z 0-9 . _ - (and not "anonymous")');
    if (password.length < 8 || password.length > 1024)
      throw BackplaneError.badParameter('a password has 8 to 1024 characters');
    for (const g of groups)
      if (!GROUP_NAME.test(g)) throw BackplaneError.badParameter(`bad group name ${JSON.stringify(g)}`);
    const salt = randomBytes(16);
    const hash = await scryptAsync(password, salt, 32, SCRYPT);
    const rec: UserRecord = {
      name,
      salt: salt.toString('base64'),
      hash: hash.toString('base64'),
      groups: [...new Set(groups)],
    };
    await this.committer.commit([{ type: 'put', key: keys.user(name), value: JSON.stringify(rec) }]);
    this.users.set(name, rec);
    this.forget(name);
  }

  async delete(name: string): Promise<void> {
    if (!this.users.has(name)) throw BackplaneError.notFound(`no user ${name}`);
    await this.committer.commit([{ type: 'del', key: keys.user(name) }]);
    this.users.delete(name);
    this.forget(name);
  }

  private forget(name: string): void {
    for (const [k, p] of this.verified) if (p.user === name) this.verified.delete(k);
  }

  /** The caller of a call with this `authorization` header (none: anonymous). */
  async authenticate(header: string | undefined): Promise<Principal> {
    if (!header) return ANONYMOUS;
    const digest = createHash('sha256').update(header).digest('base64');
    const known = this.verified.get(digest);
    if (known) return known;
    const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header.trim());
    const decoded = m ? Buffer.from(m[1] as string, 'base64').toString('utf8') : '';
    const colon = decoded.indexOf(':');
    const fail = () => BackplaneError.of('AUTHENTICATION_FAILED', 'wrong user name or password');
    if (colon <= 0)
      throw BackplaneError.of('AUTHENTICATION_FAILED', 'authorization must be Basic base64(user:password)');
    const name = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    const u = this.users.get(name);
    // a missing user costs the same scrypt as a wrong password: response time does not tell which
    const salt = u ? Buffer.from(u.salt, 'base64') : Buffer.alloc(16);
    const hash = await scryptAsync(password, salt, 32, SCRYPT);
    const expected = u ? Buffer.from(u.hash, 'base64') : Buffer.alloc(32, 0xff);
    if (!u || !timingSafeEqual(hash, expected)) throw fail();
    // deleted or given a new password while the hash was computed: this password is no longer valid
    if (this.users.get(name) !== u) throw fail();
    const p: Principal = { user: u.name, groups: u.groups };
    if (this.verified.size >= 10_000) this.verified.clear();
    this.verified.set(digest, p);
    return p;
  }
}
