import { Metadata, type ServiceError, status } from '@grpc/grpc-js';

/** Trailing-metadata key that carries the stable, machine-readable reason of an error. */
export const REASON_KEY = 'backplane-reason';

/**
 * The error vocabulary of ARCHITECTURE.md: the seeds' error names and the gRPC code each maps to.
 * Services may use any SCREAMING_SNAKE reason; these are the shared ones.
 */
export const Reason = {
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  BAD_PARAMETER: status.INVALID_ARGUMENT,
  INCORRECT_STATE: status.FAILED_PRECONDITION,
  TYPE_MISMATCH: status.FAILED_PRECONDITION,
  PERMISSION_DENIED: status.PERMISSION_DENIED,
  AUTHENTICATION_FAILED: status.UNAUTHENTICATED,
  TIMEOUT: status.DEADLINE_EXCEEDED,
  CANCELLED: status.CANCELLED,
  RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  NO_SUCCESS: status.UNAVAILABLE,
  DATA_LOSS: status.DATA_LOSS,
  INTERNAL: status.INTERNAL,
} as const;
export type Reason = keyof typeof Reason;

export interface BackplaneErrorOptions {
  cause?: unknown;
  /** A more specific reason than the kind's own name, e.g. SCOPE_NOT_FOUND for a NOT_FOUND. */
  reason?: string;
  /** Extra trailing metadata (string values only). */
  metadata?: Record<string, string>;
}

/** The longest error message (and trailer value) a server sends, in characters. */
export const MAX_DETAILS = 512;

function cut(text: string): string {
  return text.length <= MAX_DETAILS
    ? text
    : `${text.slice(0, MAX_DETAILS - 30)}… (${text.length} characters, cut)`;
}

/**
 * One error class for every service and client: a gRPC status code, a stable reason and a message
 * that says what was wrong and what is allowed.
 */
export class BackplaneError extends Error {
  override readonly name: string = 'BackplaneError';
  readonly code: status;
  readonly reason: string;
  readonly metadata: Record<string, string>;

  constructor(code: status, reason: string, message: string, options: BackplaneErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.reason = reason;
    this.metadata = options.metadata ?? {};
  }

  /** An error of one of the shared reasons, its code taken from the vocabulary. */
  static of(reason: Reason, message: string, options?: BackplaneErrorOptions): BackplaneError {
    return new BackplaneError(Reason[reason], options?.reason ?? reason, message, options);
  }

  static notFound(message: string, options?: BackplaneErrorOptions): BackplaneError {
    return BackplaneError.of('NOT_FOUND', message, options);
  }
  static alreadyExists(message: string, options?: BackplaneErrorOptions): BackplaneError {
    return BackplaneError.of('ALREADY_EXISTS', message, options);
  }
  static badParameter(message: string, options?: BackplaneErrorOptions): BackplaneError {
    return BackplaneError.of('BAD_PARAMETER', message, options);
  }
  static incorrectState(message: string, options?: BackplaneErrorOptions): BackplaneError {
    return BackplaneError.of('INCORRECT_STATE', message, options);
  }
  static permissionDenied(message: string, options?: BackplaneErrorOptions): BackplaneError {
    return BackplaneError.of('PERMISSION_DENIED', message, options);
  }
  static unavailable(message: string, options?: BackplaneErrorOptions): BackplaneError {
    return BackplaneError.of('NO_SUCCESS', message, options);
  }

  /**
   * Anything thrown → BackplaneError. A gRPC ServiceError (a client call that failed) keeps its code and
   * reason; any other error becomes INTERNAL, keeping the original as `cause`.
   */
  static from(err: unknown): BackplaneError {
    if (err instanceof BackplaneError) return err;
    if (isServiceError(err)) return fromServiceError(err);
    const message = err instanceof Error ? err.message : String(err);
    return new BackplaneError(status.INTERNAL, 'INTERNAL', `internal error: ${message}`, { cause: err });
  }

  /**
   * The status a server sends: code, details, and the reason in trailing metadata. Details and values are
   * cut to MAX_DETAILS characters: a message that quotes a huge bad input would otherwise make trailers
   * no client accepts, and the client would see a dropped connection instead of the error.
   */
  toServiceError(): Partial<ServiceError> & { code: status; details: string; metadata: Metadata } {
    const metadata = new Metadata();
    metadata.set(REASON_KEY, cut(this.reason));
    for (const [k, v] of Object.entries(this.metadata)) metadata.set(k, cut(v));
    const details = cut(this.message);
    return { code: this.code, details, metadata, message: details, name: this.name };
  }

  /** Whether this error has the given reason (or code, when a number is given). */
  is(reasonOrCode: string | status): boolean {
    return typeof reasonOrCode === 'number' ? this.code === reasonOrCode : this.reason === reasonOrCode;
  }
}

export function isServiceError(err: unknown): err is ServiceError {
  return (
    err instanceof Error &&
    typeof (err as Partial<ServiceError>).code === 'number' &&
    'details' in err &&
    'metadata' in err
  );
}

const codeNames = Object.fromEntries(Object.entries(status).map(([k, v]) => [v, k])) as Record<
  number,
  string
>;

/** The name of a status code, e.g. `NOT_FOUND`. */
export function statusName(code: number): string {
  return codeNames[code] ?? `CODE_${code}`;
}

/** Client side: a failed call's ServiceError → BackplaneError with the server's reason and message. */
export function fromServiceError(err: ServiceError): BackplaneError {
  const reasonValue = err.metadata?.get(REASON_KEY)[0];
  const reason = typeof reasonValue === 'string' ? reasonValue : statusName(err.code);
  return new BackplaneError(err.code, reason, err.details || err.message, { cause: err });
}
