import { BackplaneError, statusName } from '@backplane/client-core';
import type {
  Metadata,
  ServerDuplexStream,
  ServerReadableStream,
  ServerUnaryCall,
  ServerWritableStream,
  ServiceDefinition,
  sendUnaryData,
  UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import type { Logger } from './logger';

/** What a handler knows about its call. */
export interface CallContext {
  /** Full method path, e.g. `/backplane.naming.v1.NamingService/Resolve`. */
  readonly method: string;
  readonly peer: string;
  /**
   * The address the client dialled (HTTP/2 :authority, e.g. `127.0.0.1:7000` or `name-server:7000`): which
   * of a service's advertised addresses it can use (see `external.ts`).
   */
  readonly authority: string;
  readonly metadata: Metadata;
  /** Absolute deadline in ms since the epoch, or undefined when the client set none. */
  readonly deadline: number | undefined;
  /** Aborted when the client cancels, the deadline passes or the server shuts down. */
  readonly signal: AbortSignal;
  readonly log: Logger;
}

/** The response side of a streaming call. `send` waits while the client's window is full. */
export interface ResponseSink<Res> {
  send(message: Res): Promise<void>;
  /**
   * Sends even after the server started shutting down (send refuses then), as long as the client is
   * there: for answers to work that was already in progress. Returns undefined when the message was
   * taken at once, else a promise that settles when the client's window has room again (or it left).
   */
  sendWhileStopping(message: Res): Promise<void> | undefined;
}

type Req<M> = M extends { requestDeserialize(value: Buffer): infer R } ? R : never;
type Res<M> = M extends { responseSerialize(value: infer R): Buffer } ? R : never;

export type UnaryHandler<Rq, Rs> = (request: Rq, ctx: CallContext) => Promise<Rs>;
export type ServerStreamHandler<Rq, Rs> = (
  request: Rq,
  sink: ResponseSink<Rs>,
  ctx: CallContext,
) => Promise<void>;
export type ClientStreamHandler<Rq, Rs> = (requests: AsyncIterable<Rq>, ctx: CallContext) => Promise<Rs>;
export type BidiStreamHandler<Rq, Rs> = (
  requests: AsyncIterable<Rq>,
  sink: ResponseSink<Rs>,
  ctx: CallContext,
) => Promise<void>;

/** The promise-based handler type of one method of a ts-proto service definition. */
export type HandlerOf<M> = M extends { requestStream: false; responseStream: false }
  ? UnaryHandler<Req<M>, Res<M>>
  : M extends { requestStream: false; responseStream: true }
    ? ServerStreamHandler<Req<M>, Res<M>>
    : M extends { requestStream: true; responseStream: false }
      ? ClientStreamHandler<Req<M>, Res<M>>
      : BidiStreamHandler<Req<M>, Res<M>>;

/** Handlers for every method of a service definition, e.g. `ServiceHandlers<typeof NamingServiceService>`. */
export type ServiceHandlers<D> = { [K in keyof D]: HandlerOf<D[K]> };

export interface WrapOptions {
  log: Logger;
  /** Aborted when the server starts shutting down; long calls (watches, waits) end with UNAVAILABLE. */
  shutdownSignal: AbortSignal;
  /** Runs before every handler; throw a BackplaneError (e.g. UNAUTHENTICATED) to refuse the call. */
  authenticate?: (ctx: CallContext) => void | Promise<void>;
  /** Count of calls in progress, for draining on shutdown. */
  inFlight: { count: number };
  /** Load shedding: calls beyond these get RESOURCE_EXHAUSTED at once (see CallLimits). */
  limits?: CallLimits;
  /** Calls in progress per client address, shared by every service of the server. */
  perClient?: Map<string, number>;
}

/**
 * How many calls may be in progress at once, in the whole process and per client address. Long calls
 * (waits, watches, subscriptions, transfers) count for as long as they last, so these also bound the
 * waiters and subscriptions one client can hold. Health checks are not counted.
 */
export interface CallLimits {
  maxCalls: number;
  maxCallsPerClient: number;
}

/** The client part of a peer string (`127.0.0.1:5000` → `127.0.0.1`, `[::1]:5000` → `[::1]`). */
function clientOf(peer: string): string {
  const i = peer.lastIndexOf(':');
  return i > 0 ? peer.slice(0, i) : peer;
}

/** Admits or refuses a call under the limits; returns the release function. */
function admit(limits: CallLimits, perClient: Map<string, number>, inFlight: number, peer: string) {
  if (inFlight >= limits.maxCalls)
    throw BackplaneError.of(
      'RESOURCE_EXHAUSTED',
      `the server has ${limits.maxCalls} calls in progress; retry later`,
      {
        reason: 'OVERLOADED',
      },
    );
  const client = clientOf(peer);
  const n = perClient.get(client) ?? 0;
  if (n >= limits.maxCallsPerClient)
    throw BackplaneError.of(
      'RESOURCE_EXHAUSTED',
      `this client has ${limits.maxCallsPerClient} calls in progress (waits and subscriptions included), the most one client may have`,
      { reason: 'TOO_MANY_CALLS' },
    );
  perClient.set(client, n + 1);
  return () => {
    const left = (perClient.get(client) ?? 1) - 1;
    if (left === 0) perClient.delete(client);
    else perClient.set(client, left);
  };
}

const DECODE_ERROR = Symbol('decode-error');
interface DecodeFailure {
  [DECODE_ERROR]: Error;
}

function decodeFailure(value: unknown): Error | undefined {
  return typeof value === 'object' && value !== null && DECODE_ERROR in value
    ? (value as DecodeFailure)[DECODE_ERROR]
    : undefined;
}

/**
 * A copy of the definition whose request decoder never throws: a malformed message is handed to the
 * wrapper, which answers INVALID_ARGUMENT (grpc-js itself would answer INTERNAL).
 */
export function tolerantDefinition(definition: ServiceDefinition): ServiceDefinition {
  const out: Record<string, unknown> = {};
  for (const [key, method] of Object.entries(definition)) {
    out[key] = {
      ...method,
      requestDeserialize: (buf: Buffer): unknown => {
        try {
          return method.requestDeserialize(buf);
        } catch (err) {
          return { [DECODE_ERROR]: err as Error } satisfies DecodeFailure;
        }
      },
    };
  }
  return out as ServiceDefinition;
}

type AnyCall =
  | ServerUnaryCall<unknown, unknown>
  | ServerWritableStream<unknown, unknown>
  | ServerReadableStream<unknown, unknown>
  | ServerDuplexStream<unknown, unknown>;

function deadlineOf(call: AnyCall): number | undefined {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * The context of one call. Its abort signal is made on first use: most unary handlers never look at it,
 * and wiring cancel, deadline and shutdown listeners for every call is measurable at high call rates.
 */
function makeContext(method: string, call: AnyCall, opts: WrapOptions) {
  let controller: AbortController | undefined;
  let timer: NodeJS.Timeout | undefined;
  let disposed = false;
  const deadline = deadlineOf(call);
  const onShutdown = () => controller?.abort(BackplaneError.unavailable('server is shutting down'));
  const onCancel = () => controller?.abort(BackplaneError.of('CANCELLED', 'the client cancelled the call'));
  const signal = (): AbortSignal => {
    if (controller) return controller.signal;
    controller = new AbortController();
    if (disposed) return controller.signal;
    if (opts.shutdownSignal.aborted) onShutdown();
    else opts.shutdownSignal.addEventListener('abort', onShutdown, { once: true });
    if (call.cancelled) onCancel();
    else (call as NodeJS.EventEmitter).once('cancelled', onCancel);
    if (deadline !== undefined) {
      timer = setTimeout(
        () => controller?.abort(BackplaneError.of('TIMEOUT', 'deadline exceeded')),
        Math.max(0, deadline - Date.now()),
      );
      timer.unref();
    }
    return controller.signal;
  };
  const ctx: CallContext = {
    method,
    get peer() {
      return call.getPeer();
    },
    get authority() {
      return call.getHost();
    },
    metadata: call.metadata,
    deadline,
    get signal() {
      return signal();
    },
    log: opts.log,
  };
  const dispose = () => {
    disposed = true;
    if (!controller) return;
    if (timer) clearTimeout(timer);
    opts.shutdownSignal.removeEventListener('abort', onShutdown);
    (call as NodeJS.EventEmitter).off('cancelled', onCancel);
  };
  const aborted = () => controller?.signal.aborted ?? false;
  const reason = () => controller?.signal.reason;
  return { ctx, dispose, aborted, reason };
}

/** What the client sees for a thrown error: BackplaneErrors as they are, anything else as a bare INTERNAL. */
function toStatus(err: unknown, ctx: CallContext): BackplaneError {
  if (err instanceof BackplaneError) return err;
  ctx.log.error({ err, method: ctx.method, peer: ctx.peer }, 'handler failed');
  return new BackplaneError(
    status.INTERNAL,
    'INTERNAL',
    `internal error in ${ctx.method}; the server logged it`,
    {
      cause: err,
    },
  );
}

function sinkFor<T>(
  call: ServerWritableStream<unknown, T> | ServerDuplexStream<unknown, T>,
  signal: AbortSignal,
) {
  // answers sent while stopping share one wait for the window (a pipeline has many at once)
  const gone = BackplaneError.of('CANCELLED', 'the client cancelled the call');
  let drained: Promise<void> | undefined;
  const waitDrain = () => {
    drained ??= new Promise<void>((resolve, reject) => {
      const done = (err?: unknown) => {
        call.off('drain', onDrain);
        call.off('cancelled', onGone);
        drained = undefined;
        if (err) reject(err);
        else resolve();
      };
      const onDrain = () => done();
      const onGone = () => done(gone);
      call.once('drain', onDrain);
      call.once('cancelled', onGone);
    });
    return drained;
  };
  return {
    send(message: T): Promise<void> {
      if (signal.aborted) return Promise.reject(signal.reason);
      if (call.write(message)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const onDrain = () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = () => {
          call.off('drain', onDrain);
          reject(signal.reason);
        };
        call.once('drain', onDrain);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    },
    sendWhileStopping(message: T): Promise<void> | undefined {
      if (call.cancelled || call.destroyed || call.writableEnded) return Promise.reject(gone);
      if (call.write(message) && !drained) return undefined;
      return waitDrain();
    },
  } satisfies ResponseSink<T>;
}

async function* decodedRequests(
  call: ServerReadableStream<unknown, unknown> | ServerDuplexStream<unknown, unknown>,
) {
  // not destroyed when the handler stops early: the call still has its answer to send (and Node's default
  // destroy-on-return builds an AbortError with a stack trace for every client stream)
  for await (const message of call.iterator({ destroyOnReturn: false })) {
    const bad = decodeFailure(message);
    if (bad) throw BackplaneError.badParameter(`malformed request message: ${bad.message}`);
    yield message;
  }
}

/**
 * Turns promise-based handlers into grpc-js handlers that log every call (method, code, duration, peer;
 * successful calls at debug level),
 * map thrown errors to statuses (a bug answers INTERNAL, never kills the process), check
 * authentication and give each handler a CallContext with an abort signal.
 */
export function wrapHandlers(
  definition: ServiceDefinition,
  handlers: Record<string, (...args: never[]) => Promise<unknown>>,
  opts: WrapOptions,
): UntypedServiceImplementation {
  const impl: UntypedServiceImplementation = {};
  const perClient = opts.perClient ?? new Map<string, number>();
  for (const [key, method] of Object.entries(definition)) {
    const handler = handlers[key] as ((...args: unknown[]) => Promise<unknown>) | undefined;
    if (!handler) throw new Error(`no handler for ${method.path}`);
    const run = async (call: AnyCall, body: (ctx: CallContext) => Promise<unknown>) => {
      const started = process.hrtime.bigint();
      const { ctx, dispose, aborted, reason } = makeContext(method.path, call, opts);
      let error: BackplaneError | undefined;
      let result: unknown;
      let release: (() => void) | undefined;
      let counted = false;
      try {
        if (opts.limits) release = admit(opts.limits, perClient, opts.inFlight.count, ctx.peer);
        opts.inFlight.count++;
        counted = true;
        if (opts.authenticate) await opts.authenticate(ctx);
        result = await body(ctx);
      } catch (err) {
        error =
          aborted() && !(err instanceof BackplaneError) ? BackplaneError.from(reason()) : toStatus(err, ctx);
      } finally {
        dispose();
        if (counted) opts.inFlight.count--;
        release?.();
      }
      // every call is logged at debug level; failures at info (error for INTERNAL/UNKNOWN), so a busy
      // server's log is its problems, not its traffic
      const level = !error
        ? 'debug'
        : error.code === status.INTERNAL || error.code === status.UNKNOWN
          ? 'error'
          : 'info';
      if (opts.log.isLevelEnabled(level)) {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        opts.log[level](
          {
            method: method.path,
            code: error ? statusName(error.code) : 'OK',
            ms: Math.round(ms * 1000) / 1000,
            peer: ctx.peer,
            reason: error?.reason,
          },
          'call',
        );
      }
      return { error, result };
    };

    if (!method.requestStream && !method.responseStream) {
      impl[key] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
        void run(call, (ctx) => {
          const bad = decodeFailure(call.request);
          if (bad) throw BackplaneError.badParameter(`malformed request message: ${bad.message}`);
          return handler(call.request, ctx);
        }).then(({ error, result }) => (error ? callback(error.toServiceError()) : callback(null, result)));
      };
    } else if (!method.requestStream && method.responseStream) {
      impl[key] = (call: ServerWritableStream<unknown, unknown>) => {
        void run(call, (ctx) => {
          const bad = decodeFailure(call.request);
          if (bad) throw BackplaneError.badParameter(`malformed request message: ${bad.message}`);
          return handler(call.request, sinkFor(call, ctx.signal), ctx);
        }).then(({ error }) => endStream(call, error));
      };
    } else if (method.requestStream && !method.responseStream) {
      impl[key] = (call: ServerReadableStream<unknown, unknown>, callback: sendUnaryData<unknown>) => {
        void run(call, (ctx) => handler(decodedRequests(call), ctx)).then(({ error, result }) =>
          error ? callback(error.toServiceError()) : callback(null, result),
        );
      };
    } else {
      impl[key] = (call: ServerDuplexStream<unknown, unknown>) => {
        void run(call, (ctx) => handler(decodedRequests(call), sinkFor(call, ctx.signal), ctx)).then(
          ({ error }) => endStream(call, error),
        );
      };
    }
  }
  return impl;
}

function endStream(
  call: ServerWritableStream<unknown, unknown> | ServerDuplexStream<unknown, unknown>,
  error?: BackplaneError,
) {
  if (call.cancelled || call.destroyed || call.writableEnded) return;
  if (error) call.emit('error', error.toServiceError());
  else call.end();
}
