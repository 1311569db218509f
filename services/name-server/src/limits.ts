import { BackplaneError } from '@backplane/runtime';

/** Documented limits of the name server. Anything outside them is answered INVALID_ARGUMENT. */
export const LIMITS = {
  /** A name: 1-256 bytes of UTF-8 without control characters. */
  maxNameBytes: 256,
  /** A scope: 1-128 characters of [A-Za-z0-9._-], starting with a letter or digit. */
  maxScopeLength: 128,
  maxTypes: 64,
  maxTypeLength: 256,
  maxHostLength: 253,
  maxMetadataEntries: 32,
  maxMetadataKeyLength: 64,
  maxMetadataValueLength: 1024,
  /** 0 = no lease; otherwise between these. */
  minLeaseTtlMs: 500,
  maxLeaseTtlMs: 24 * 3600 * 1000,
  defaultPageSize: 100,
  maxPageSize: 1000,
  /** Scopes a lookup may walk through before the chain is declared broken. */
  maxScopeDepth: 32,
} as const;

export const DEFAULT_SCOPE = 'default';

const SCOPE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const TYPE_RE = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
const CONTROL_RE = /[\u0000-\u001f\u007f]/;

/** Protobuf decoders replace invalid UTF-8 with U+FFFD: seeing one means the client sent bad bytes. */
function checkText(what: string, value: string): void {
  if (value.includes('\ufffd')) throw BackplaneError.badParameter(`${what} is not valid UTF-8`);
  if (CONTROL_RE.test(value))
    throw BackplaneError.badParameter(`${what} must not contain control characters`);
}

export function validateName(name: string, what = 'name'): string {
  if (name.length === 0) throw BackplaneError.badParameter(`${what} must not be empty`);
  checkText(what, name);
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > LIMITS.maxNameBytes) {
    throw BackplaneError.badParameter(
      `${what} is ${bytes} bytes; at most ${LIMITS.maxNameBytes} are allowed`,
    );
  }
  return name;
}

/** A scope name; the empty string means the default scope. */
export function validateScope(scope: string, what = 'scope'): string {
  if (scope === '') return DEFAULT_SCOPE;
  checkText(what, scope);
  if (scope.length > LIMITS.maxScopeLength) {
    throw BackplaneError.badParameter(
      `${what} is ${scope.length} characters; at most ${LIMITS.maxScopeLength} are allowed`,
    );
  }
  if (!SCOPE_RE.test(scope)) {
    throw BackplaneError.badParameter(
      `${what} "${scope}" may only hold letters, digits, ".", "_" and "-", and must start with a letter or digit`,
    );
  }
  return scope;
}

export function validateType(type: string, what = 'type'): string {
  checkText(what, type);
  if (type.length > LIMITS.maxTypeLength || !TYPE_RE.test(type)) {
    throw BackplaneError.badParameter(
      `${what} "${type.slice(0, 80)}" must be a fully-qualified protobuf service name such as backplane.naming.v1.NamingService`,
    );
  }
  return type;
}

export function validateTypes(types: readonly string[]): string[] {
  if (types.length > LIMITS.maxTypes) {
    throw BackplaneError.badParameter(`${types.length} types given; at most ${LIMITS.maxTypes} are allowed`);
  }
  return [...new Set(types.map((t) => validateType(t)))];
}

export interface LocationInput {
  host: string;
  port: number;
  metadata: Record<string, string>;
}

export function validateLocation(location: LocationInput | undefined): LocationInput {
  if (!location) throw BackplaneError.badParameter('location is required (host and port)');
  const { host, port, metadata } = location;
  if (host.length === 0) throw BackplaneError.badParameter('location.host must not be empty');
  checkText('location.host', host);
  if (host.length > LIMITS.maxHostLength || /\s/.test(host)) {
    throw BackplaneError.badParameter(
      `location.host must be a host name or IP address of at most ${LIMITS.maxHostLength} characters`,
    );
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw BackplaneError.badParameter(`location.port must be 1-65535, got ${port}`);
  }
  const entries = Object.entries(metadata ?? {});
  if (entries.length > LIMITS.maxMetadataEntries) {
    throw BackplaneError.badParameter(
      `location.metadata has ${entries.length} entries; at most ${LIMITS.maxMetadataEntries} are allowed`,
    );
  }
  for (const [k, v] of entries) {
    checkText('location.metadata key', k);
    checkText(`location.metadata["${k}"]`, v);
    if (k.length === 0 || k.length > LIMITS.maxMetadataKeyLength) {
      throw BackplaneError.badParameter(
        `location.metadata keys must be 1-${LIMITS.maxMetadataKeyLength} characters`,
      );
    }
    if (v.length > LIMITS.maxMetadataValueLength) {
      throw BackplaneError.badParameter(
        `location.metadata values must be at most ${LIMITS.maxMetadataValueLength} characters`,
      );
    }
  }
  return { host, port, metadata: { ...metadata } };
}

export function validateLeaseTtl(ttlMs: number): number {
  if (!Number.isInteger(ttlMs) || ttlMs < 0) {
    throw BackplaneError.badParameter(
      `lease_ttl_ms must be 0 (no lease) or a positive number of milliseconds, got ${ttlMs}`,
    );
  }
  if (ttlMs !== 0 && (ttlMs < LIMITS.minLeaseTtlMs || ttlMs > LIMITS.maxLeaseTtlMs)) {
    throw BackplaneError.badParameter(
      `lease_ttl_ms must be 0 (no lease) or between ${LIMITS.minLeaseTtlMs} and ${LIMITS.maxLeaseTtlMs}, got ${ttlMs}`,
    );
  }
  return ttlMs;
}

export function validatePageSize(size: number): number {
  if (!Number.isInteger(size) || size < 0 || size > LIMITS.maxPageSize) {
    throw BackplaneError.badParameter(
      `page_size must be 0 (default ${LIMITS.defaultPageSize}) to ${LIMITS.maxPageSize}, got ${size}`,
    );
  }
  return size === 0 ? LIMITS.defaultPageSize : size;
}

/** An empty or a syntactically plausible secret; the comparison itself happens in constant time elsewhere. */
export function requireSecret(secret: string): string {
  if (secret.length === 0) throw BackplaneError.badParameter('owner_secret is required');
  if (secret.length > 256) throw BackplaneError.permissionDenied('wrong owner secret');
  return secret;
}
