import {
  type ClientReadableStream,
  type ClientUnaryCall,
  type CallOptions as GrpcCallOptions,
  Metadata,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { BackplaneError, isServiceError } from './errors';

/** Options every client method of every Backplane client package accepts. */
export interface CallOptions {
  /** Relative deadline in milliseconds. */
  timeoutMs?: number;
  /** Absolute deadline. */
  deadline?: Date;
  /** Cancels the call. */
  signal?: AbortSignal;
  metadata?: Metadata;
}

export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<GrpcCallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

type StreamMethod<Req, Res> = (
  request: Req,
  metadata?: Metadata,
  options?: Partial<GrpcCallOptions>,
) => ClientReadableStream<Res>;

/** The call's absolute deadline (ms since the epoch) from `deadline` or `timeoutMs`, if it has one. */
export function deadlineOf(opts: CallOptions): number | undefined {
  return opts.deadline?.getTime() ?? (opts.timeoutMs !== undefined ? Date.now() + opts.timeoutMs : undefined);
}

function grpcOptions(opts: CallOptions): Partial<GrpcCallOptions> {
  const deadline = deadlineOf(opts);
  return deadline === undefined ? {} : { deadline: new Date(deadline) };
}

/** What grpc-js says, with status INTERNAL, when it cannot encode a request (nothing reached the server). */
const SERIALIZATION_FAILURE = 'Request message serialization failure: ';

/**
 * A failed call as a BackplaneError. A request the client could not encode (a fraction where the message
 * has an integer, a number where it has bytes) is the caller's bad parameter, not an internal error.
 */
function callError(err: ServiceError): BackplaneError {
  if (err.code === status.INTERNAL && err.details?.startsWith(SERIALIZATION_FAILURE)) {
    return BackplaneError.badParameter(
      `the request could not be encoded: ${err.details.slice(SERIALIZATION_FAILURE.length)}`,
      { cause: err },
    );
  }
  return BackplaneError.from(err);
}

/** Calls a unary method of a grpc-js client; failures reject with a BackplaneError carrying the server's reason. */
export function unary<Req, Res>(
  method: UnaryMethod<Req, Res>,
  request: Req,
  opts: CallOptions = {},
): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(BackplaneError.of('CANCELLED', 'the call was cancelled before it started'));
      return;
    }
    const call = method(request, opts.metadata ?? new Metadata(), grpcOptions(opts), (err, res) => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (err) reject(callError(err));
      else resolve(res);
    });
    const onAbort = () => call.cancel();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Iterates a server-streaming call; errors surface as BackplaneErrors, breaking out cancels the call. */
export async function* serverStream<Req, Res>(
  method: StreamMethod<Req, Res>,
  request: Req,
  opts: CallOptions = {},
): AsyncGenerator<Res, void, undefined> {
  const call = method(request, opts.metadata ?? new Metadata(), grpcOptions(opts));
  const onAbort = () => call.cancel();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const message of call as AsyncIterable<Res>) yield message;
  } catch (err) {
    if (isServiceError(err)) throw callError(err);
    throw err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    call.cancel();
  }
}

/** Metadata carrying a bearer token. */
/**
 * Channel options every client uses: after a server restart, grpc-js retries the connection with an
 * exponential backoff that by default grows to 120 s, so a client could stay cut off long after the server
 * is back (the fault runs saw a depot client refused for a minute). Backplane servers restart in about a
 * second: retry from 200 ms, never waiting more than 2 s.
 */
export const RECONNECT_OPTIONS = {
  'grpc.initial_reconnect_backoff_ms': 200,
  'grpc.max_reconnect_backoff_ms': 2000,
} as const;

export function bearerMetadata(token: string): Metadata {
  const md = new Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}

/**
 * The location metadata key under which a service publishes its external address (host:port): where
 * programs outside its network (the Docker host) reach it. See the runtime's Audiences.
 */
export const EXTERNAL_ADDRESS_KEY = 'external';
