export { nameServerSettings } from './config';
export type { NameServerOptions, RunningNameServer } from './embedded';
export { startNameServer } from './embedded';
export { DEFAULT_SCOPE, LIMITS } from './limits';
export type { BindingView, Change, ScopeRecord } from './records';
export type { ParentResolver, RegistryOptions, Resolution } from './registry';
export { Registry } from './registry';
export { namingService } from './server';
