export { DsAdmin } from './admin';
export type { ArrivalReason } from './ds-client';
export { DsClient } from './ds-client';
export type { DsServiceOptions } from './ds-service';
export { DEFAULT_COORDINATOR, DsService } from './ds-service';
export type { ReleasedStream } from './ds-stream';
export { DsStream } from './ds-stream';
export type { HandoffPolicy, TargetInfo } from './policy';
export { LeastClientsHandoffPolicy, PickFirstHandoffPolicy, RoundRobinHandoffPolicy } from './policy';
