export { AsyncLock, Condition } from './async-lock';
export { AsyncQueue } from './async-queue';
export { bearerTokenAuth, secretKey, secretsEqual } from './auth';
export type { CallOptions, UnaryMethod } from './client';
export { bearerMetadata, RECONNECT_OPTIONS, serverStream, unary } from './client';
export type { CommonConfig, ConfigOf, ConfigSpec, Setting } from './config';
export {
  ConfigError,
  commonSettings,
  describeConfig,
  loadConfig,
  parseFlags,
  parseHostPort,
  serviceOptions,
  settings,
} from './config';
export { crc32Combine } from './crc32';
export type { BackplaneErrorOptions } from './errors';
export {
  BackplaneError,
  fromServiceError,
  isServiceError,
  MAX_DETAILS,
  REASON_KEY,
  Reason,
  statusName,
} from './errors';
export { ExpiryHeap } from './expiry-heap';
export type {
  BidiStreamHandler,
  CallContext,
  CallLimits,
  ClientStreamHandler,
  HandlerOf,
  ResponseSink,
  ServerStreamHandler,
  ServiceHandlers,
  UnaryHandler,
} from './handlers';
export type { Logger } from './logger';
export { createLogger, flushLogger, REDACTED_PATHS, silentLogger } from './logger';
export type { MainOptions } from './main';
export { hasRelayMallocEnv, RELAY_MALLOC_ENV, runMain, runService } from './main';
export type { PeerAccess } from './peer';
export { PLAIN_PEER, peerAccess } from './peer';
export type { CallPipelineOptions, PipelinedMethod } from './pipeline-client';
export { CallPipeline, MAX_PIPELINED_REQUEST, pipelinedUnary } from './pipeline-client';
export { healthCheck, reflectionListServices } from './probes';
export type { RunningService, ServiceRegistration, StartServiceOptions } from './server';
export {
  closeOnSignals,
  DEFAULT_CALL_LIMITS,
  DEFAULT_MAX_STREAMS_PER_CONNECTION,
  service,
  serviceNameOf,
  startService,
} from './server';
export type { Store, StoreOp } from './store';
export { GroupCommitter, openStore, prefixEnd } from './store';
export type { TlsFiles } from './tls';
export { clientCredentials, serverCredentials } from './tls';
export { TurnBatch } from './turn-batch';
