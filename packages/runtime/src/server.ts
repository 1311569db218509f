import { type EventEmitter, setMaxListeners } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Http2Session } from 'node:http2';
import { dirname, join } from 'node:path';
import { descriptorSetPath } from '@backplane/proto';
import { PipelineServiceService } from '@backplane/proto/pipeline';
import { type ChannelOptions, Server, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { HealthImplementation } from 'grpc-health-check';
import { bearerTokenAuth } from './auth';
import {
  type CallContext,
  type CallLimits,
  type ServiceHandlers,
  tolerantDefinition,
  wrapHandlers,
} from './handlers';
import { flushLogger, type Logger, serviceLogger, silentLogger } from './logger';
import { pipelineHandler, type UnaryTarget } from './pipeline-server';
import { addReflection, reflectionIndex } from './reflection';
import { serverCredentials, type TlsFiles } from './tls';

/** One gRPC service to serve: a ts-proto definition and its promise-based handlers. */
export interface ServiceRegistration {
  definition: ServiceDefinition;
  handlers: Record<string, (...args: never[]) => Promise<unknown>>;
}

/** Pairs a definition with handlers, type-checking every handler against the contract. */
export function service<D extends Record<string, unknown>>(
  definition: D,
  handlers: ServiceHandlers<D>,
): ServiceRegistration {
  return {
    definition: definition as unknown as ServiceDefinition,
    handlers: handlers as unknown as ServiceRegistration['handlers'],
  };
}

export interface StartServiceOptions {
  /** Process-level name, e.g. `name-server`: used in logs. */
  name: string;
  services: ServiceRegistration[];
  host?: string;
  /** 0 picks a free port (tests). */
  port?: number;
  log?: Logger;
  tls?: TlsFiles;
  /** When set, every call (health checks excepted) needs `authorization: Bearer <token>`. */
  authToken?: string | undefined;
  /** A custom authentication hook, run after the bearer-token check. */
  authenticate?: (ctx: CallContext) => void | Promise<void>;
  /** Load shedding (default: DEFAULT_CALL_LIMITS); calls beyond them get RESOURCE_EXHAUSTED at once. */
  limits?: CallLimits;
  /** HTTP/2 streams one connection may have open (SETTINGS_MAX_CONCURRENT_STREAMS); default 2000. */
  maxStreamsPerConnection?: number;
  /** How long close() waits for in-flight calls before cancelling them. */
  shutdownTimeoutMs?: number;
  /** Run after the server stopped, in reverse order (close stores here). */
  onClose?: Array<() => unknown>;
  grpcOptions?: ChannelOptions;
  /**
   * HTTP/2 receive window (bytes) for each connection and stream. Node's default of 64 KiB makes every
   * 1 MiB upload chunk wait for many window updates; bulk services raise it (the IBP depot: 16 MiB).
   */
  flowControlWindow?: number;
  /**
   * Serve backplane.pipeline.v1.PipelineService (default true): clients may send many unary calls as
   * messages of one stream, each run exactly as the plain unary call.
   */
  pipeline?: boolean;
}

export interface RunningService {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** host:port to dial, e.g. `127.0.0.1:7000`. */
  readonly address: string;
  readonly server: Server;
  readonly health: HealthImplementation;
  readonly log: Logger;
  /** Fully-qualified names of the served services (without health and reflection). */
  readonly serviceNames: string[];
  /** Aborted when shutdown starts. */
  readonly shutdownSignal: AbortSignal;
  /** Calls in progress. */
  inFlight(): number;
  /**
   * Health of every served service (and of ""): false while a backend the service needs is out of reach
   * (its NATS connection, say), so supervisors and clients go elsewhere. Ignored once shutdown started.
   */
  setServing(serving: boolean): void;
  addCloseHook(hook: () => unknown): void;
  /** Runs as soon as shutdown starts, while calls drain (e.g. leave the name server, so no new clients come). */
  addShutdownHook(hook: () => unknown): void;
  /** Graceful stop: NOT_SERVING, end long streams, drain calls up to the timeout, run close hooks. */
  close(): Promise<void>;
}

export function serviceNameOf(definition: ServiceDefinition): string {
  const first = Object.values(definition)[0];
  if (!first) throw new Error('a service definition needs at least one method');
  return first.path.split('/')[1] as string;
}

const HEALTH_SERVICE = 'grpc.health.v1.Health';

/** Documented defaults (README "Limits"): high enough for every benchmark, low enough to bound memory. */
export const DEFAULT_CALL_LIMITS: CallLimits = { maxCalls: 50_000, maxCallsPerClient: 10_000 };
export const DEFAULT_MAX_STREAMS_PER_CONNECTION = 2000;
let reflection: ReturnType<typeof reflectionIndex> | undefined;
/** Our descriptors as buf compiled them, plus grpc.health.v1 (so grpcurl can call Health/Check too). */
function reflectionFiles(): ReturnType<typeof reflectionIndex> {
  if (reflection) return reflection;
  const health = loadSync('health/v1/health.proto', {
    includeDirs: [join(dirname(require.resolve('grpc-health-check/package.json')), 'proto')],
  });
  const healthFiles = (health[HEALTH_SERVICE] as { fileDescriptorProtos?: Buffer[] }).fileDescriptorProtos;
  reflection = reflectionIndex(readFileSync(descriptorSetPath), healthFiles ?? []);
  return reflection;
}

function bind(server: Server, address: string, creds: ReturnType<typeof serverCredentials>): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(address, creds, (err, port) => (err ? reject(err) : resolve(port))),
  );
}

/**
 * Starts a grpc-js server with the given services plus grpc.health.v1 and server reflection, every call
 * logged and guarded (see wrapHandlers).
 */
export async function startService(options: StartServiceOptions): Promise<RunningService> {
  const log = serviceLogger(options.log ?? silentLogger(), options.name);
  const host = options.host ?? '127.0.0.1';
  const server = new Server({
    'grpc.max_receive_message_length': 8 * 1024 * 1024,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5000,
    'grpc.max_concurrent_streams': options.maxStreamsPerConnection ?? DEFAULT_MAX_STREAMS_PER_CONNECTION,
    ...options.grpcOptions,
  });
  const shutdown = new AbortController();
  // every call in progress listens for shutdown: thousands of concurrent calls are normal, not a leak
  setMaxListeners(0, shutdown.signal);
  const inFlight = { count: 0 };
  const tokenCheck = options.authToken ? bearerTokenAuth(options.authToken) : undefined;
  const custom = options.authenticate;
  const authenticate =
    tokenCheck || custom
      ? async (ctx: CallContext) => {
          tokenCheck?.(ctx);
          await custom?.(ctx);
        }
      : undefined;

  const serviceNames = options.services.map((s) => serviceNameOf(s.definition));
  const limits = options.limits ?? DEFAULT_CALL_LIMITS;
  const perClient = new Map<string, number>();
  const wrapOptions = { log, shutdownSignal: shutdown.signal, authenticate, inFlight, limits, perClient };
  // every unary method, for the pipeline: a pipelined call runs the same wrapped handler
  const unaryTargets = new Map<string, UnaryTarget>();
  for (const s of options.services) {
    const tolerant = tolerantDefinition(s.definition);
    const impl = wrapHandlers(s.definition, s.handlers, wrapOptions);
    server.addService(tolerant, impl);
    for (const [key, method] of Object.entries(tolerant)) {
      if (method.requestStream || method.responseStream) continue;
      unaryTargets.set(method.path, { method, handler: impl[key] as UnaryTarget['handler'] });
    }
  }
  const pipelineDefinition = PipelineServiceService as unknown as ServiceDefinition;
  const pipeline = options.pipeline !== false;
  if (pipeline) {
    server.addService(
      tolerantDefinition(pipelineDefinition),
      // the stream itself is not held to the call limits: every call it carries is
      wrapHandlers(pipelineDefinition, { calls: pipelineHandler(unaryTargets) } as never, {
        ...wrapOptions,
        limits: undefined,
      }),
    );
  }
  const health = new HealthImplementation({
    '': 'SERVING',
    ...Object.fromEntries(serviceNames.map((n) => [n, 'SERVING'])),
  });
  health.addToServer(server);
  addReflection(server, reflectionFiles(), [
    ...serviceNames,
    ...(pipeline ? [serviceNameOf(pipelineDefinition)] : []),
    HEALTH_SERVICE,
  ]);

  const bindHost = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  const port = await bind(server, `${bindHost}:${options.port ?? 0}`, serverCredentials(options.tls));
  if (options.flowControlWindow) widenReceiveWindow(server, options.flowControlWindow, log);
  const closeHooks = [...(options.onClose ?? [])];
  const shutdownHooks: Array<() => unknown> = [];
  let closing: Promise<void> | undefined;

  const close = (): Promise<void> => {
    closing ??= (async () => {
      log.info({ inFlight: inFlight.count }, 'shutting down');
      const early = Promise.allSettled(shutdownHooks.map(async (hook) => hook()));
      for (const n of ['', ...serviceNames]) health.setStatus(n, 'NOT_SERVING');
      shutdown.abort();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          log.warn({ inFlight: inFlight.count }, 'shutdown timeout: cancelling remaining calls');
          server.forceShutdown();
          resolve();
        }, options.shutdownTimeoutMs ?? 5000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      for (const r of await early) {
        if (r.status === 'rejected') log.error({ err: r.reason }, 'shutdown hook failed');
      }
      for (const hook of closeHooks.reverse()) {
        try {
          await hook();
        } catch (err) {
          log.error({ err }, 'close hook failed');
        }
      }
      log.info('stopped');
    })();
    return closing;
  };

  const address = `${bindHost === '0.0.0.0' || bindHost === '[::]' ? '127.0.0.1' : bindHost}:${port}`;
  // the address bound (0.0.0.0:7000 in a container), not the one a local client would dial
  log.info(
    { address: `${bindHost}:${port}`, services: serviceNames, tls: Boolean(options.tls?.cert) },
    'listening',
  );
  return {
    name: options.name,
    host,
    port,
    address,
    server,
    health,
    log,
    serviceNames,
    shutdownSignal: shutdown.signal,
    inFlight: () => inFlight.count,
    setServing: (serving) => {
      if (shutdown.signal.aborted) return;
      for (const n of ['', ...serviceNames]) health.setStatus(n, serving ? 'SERVING' : 'NOT_SERVING');
    },
    addCloseHook: (hook) => closeHooks.push(hook),
    addShutdownHook: (hook) => shutdownHooks.push(hook),
    close,
  };
}

/**
 * grpc-js has no server option for the HTTP/2 receive window, so each new session is given one: its
 * connection window is raised and new SETTINGS advertise the stream window. Uses grpc-js's internal list of
 * HTTP/2 servers; if a grpc-js version lacks it, the default window stays (slower uploads, nothing worse).
 */
function widenReceiveWindow(server: Server, window: number, log: Logger): void {
  const servers = (server as unknown as { http2Servers?: Map<EventEmitter, unknown> }).http2Servers;
  if (!(servers instanceof Map)) {
    log.warn('this grpc-js version hides its HTTP/2 servers; keeping the default flow-control window');
    return;
  }
  for (const h2 of servers.keys()) {
    h2.on('session', (session: Http2Session) => {
      try {
        session.setLocalWindowSize(window);
        session.settings({ initialWindowSize: Math.min(window, 2 ** 31 - 1) });
      } catch (err) {
        log.debug({ err }, 'could not widen the HTTP/2 window');
      }
    });
  }
}

/**
 * For a service's main: closes the service on SIGTERM or SIGINT and exits (a second signal exits at once);
 * logs unhandled rejections instead of dying on them.
 */
export function closeOnSignals(running: { close(): Promise<void>; log: Logger }): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      running.log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    running.log.info({ signal }, 'signal received');
    running.close().then(
      () => flushLogger(running.log).then(() => process.exit(0)),
      (err: unknown) => {
        running.log.error({ err }, 'shutdown failed');
        return flushLogger(running.log).then(() => process.exit(1));
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('unhandledRejection', (err) => running.log.error({ err }, 'unhandled promise rejection'));
}
