export { bearerTokenAuth, secretsEqual } from './auth';
export { bearerMetadata, serverStream, unary } from './client';
export {
  ConfigError,
  commonSettings,
  describeConfig,
  loadConfig,
  parseFlags,
  parseHostPort,
  settings,
} from './config';
export { BackplaneError, fromServiceError, isServiceError, REASON_KEY, Reason, statusName } from './errors';
export { createLogger, REDACTED_PATHS, silentLogger } from './logger';
export { closeOnSignals, serviceNameOf, service, startService } from './server';
export { clientCredentials, serverCredentials } from './tls';

export type { CallOptions } from './client';
export type { CommonConfig, ConfigOf, ConfigSpec, Setting } from './config';
export type { BackplaneErrorOptions } from './errors';
export type {
  BidiStreamHandler,
  CallContext,
  ClientStreamHandler,
  HandlerOf,
  ResponseSink,
  ServerStreamHandler,
  ServiceHandlers,
  UnaryHandler,
} from './handlers';
export type { Logger } from './logger';
export type { RunningService, ServiceRegistration, StartServiceOptions } from './server';
export type { TlsFiles } from './tls';
