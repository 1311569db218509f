export type { ConnectionOptions } from './connection';
export { DEFAULT_PORT, parseBootstrapUrl, SharingConnection } from './connection';
export type { Callback, SharedEvent, SubscribeOptions } from './events';
export { SharedEvents, Subscription } from './events';
export { SharingFactory } from './factory';
export type { ChangeKind, PropertyChange, ReadOptions, Value, WatchOptions } from './properties';
export { PropertiesTransaction, Property, SharedProperties, TransactionConflict } from './properties';
