export { connect, lookup } from './connect';
export { DEFAULT_NAMESERVER, defaultNameServer, NamingClient } from './naming-client';
export { publish } from './publish';
export { NameCache, nameCache, registerNameResolver, SCHEME, targetFor } from './resolver';

export type { ConnectOptions } from './connect';
export type { BindOptions, ListOptions, NamingClientOptions, WatchEvent, WatchOptions } from './naming-client';
export type { PublishOptions, Publication } from './publish';
export type { NameCacheStats, Resolved } from './resolver';
