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
export type { LevelPropertiesOptions } from './level-properties';
export { LevelProperties } from './level-properties';
export { LIMITS, topicMatches, validateKey, validatePattern, validateTopic } from './limits';
export { LocalBus } from './local-bus';
export { NatsBus } from './nats-bus';
export type { NatsPropertiesOptions } from './nats-properties';
export { NatsProperties, safeConditionalWrites, subjectFilter } from './nats-properties';
export type { Ring, RingNode } from './ring';
export { NatsRing, singleNode } from './ring';
export { sharingService } from './server';
export type { SubscriptionHandle } from './sharing';
export { Sharing } from './sharing';
