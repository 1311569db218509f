// What every Backplane client package shares, with nothing of a server in it: calls with deadlines and
// cancellation, the error vocabulary, call pipelining, CRC-32 combination and a logger interface.
export type { CallOptions, UnaryMethod } from './client';
export {
  bearerMetadata,
  deadlineOf,
  EXTERNAL_ADDRESS_KEY,
  RECONNECT_OPTIONS,
  serverStream,
  unary,
} from './client';
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
export type { ClientLogger } from './logger';
export { SILENT_LOGGER } from './logger';
export { MAX_BATCH_BYTES, withMore } from './pipeline-batch';
export type { CallPipelineOptions, PipelinedMethod } from './pipeline-client';
export { CallPipeline, MAX_PIPELINED_REQUEST, pipelinedUnary } from './pipeline-client';
export { addEntries, metadataEntries } from './pipeline-metadata';
export { TurnBatch } from './turn-batch';
