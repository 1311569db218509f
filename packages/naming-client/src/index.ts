export type { ConnectOptions } from './connect';
export { connect, lookup } from './connect';
export type {
  BindOptions,
  ListOptions,
  NamingClientOptions,
  WatchEvent,
  WatchOptions,
} from './naming-client';
export { DEFAULT_NAMESERVER, defaultNameServer, NamingClient } from './naming-client';
export type { Publication, PublishOptions } from './publish';
export { publish } from './publish';
export { registerService } from './register';
export type { NameCacheStats, Resolved } from './resolver';
export { NameCache, nameCache, registerNameResolver, SCHEME, targetFor } from './resolver';
