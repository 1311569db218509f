export { sharingSettings } from './config';
export type { RunningSharingServer, SharingServerOptions } from './embedded';
export { startSharingServer } from './embedded';
export type {
  Change,
  ChangeKind,
  CommitResult,
  Conflict,
  Entry,
  EventBus,
  EventPayload,
  PropertiesEngine,
  PutOptions,
  Transaction,
  WatchItem,
  WatchOptions,
} from './engine';
export { LIMITS, topicMatches, validateKey, validatePattern, validateTopic } from './limits';
export { LocalBus } from './local-bus';
export { NatsBus } from './nats-bus';
export { safeConditionalWrites } from './nats-version';
export type { HistoryLimits, PropertiesResult } from './properties-machine';
export { PropertiesMachine } from './properties-machine';
export type { ReplicatedPropertiesOptions } from './replicated-properties';
export { ReplicatedProperties } from './replicated-properties';
export type { Ring, RingNode } from './ring';
export { NatsRing, singleNode } from './ring';
export { sharingService } from './server';
export type { SubscriptionHandle } from './sharing';
export { Sharing } from './sharing';
