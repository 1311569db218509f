export type {
  BackplaneErrorOptions,
  CallOptions,
  CallPipelineOptions,
  PipelinedMethod,
  UnaryMethod,
} from '@backplane/client-core';
export {
  BackplaneError,
  bearerMetadata,
  CallPipeline,
  crc32Combine,
  EXTERNAL_ADDRESS_KEY,
  fromServiceError,
  isServiceError,
  MAX_DETAILS,
  MAX_PIPELINED_REQUEST,
  pipelinedUnary,
  REASON_KEY,
  RECONNECT_OPTIONS,
  Reason,
  serverStream,
  statusName,
  TurnBatch,
  unary,
} from '@backplane/client-core';
export { unlessAborted } from './abortable';
export { AsyncLock, Condition } from './async-lock';
export type { QueueBytes } from './async-queue';
export { AsyncQueue } from './async-queue';
export { bearerTokenAuth, secretKey, secretsEqual } from './auth';
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
export { ExpiryHeap } from './expiry-heap';
export { Audiences, hostOf, withHost } from './external';
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
export type { NatsConnectOptions, NatsState } from './nats';
export {
  closeNats,
  connectNats,
  jetStreamReady,
  NATS_RECONNECT,
  NatsLink,
  natsTls,
  retryJetStream,
} from './nats';
export type { PeerAccess } from './peer';
export { PLAIN_PEER, peerAccess } from './peer';
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
