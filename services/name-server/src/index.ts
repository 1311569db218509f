export { nameServerSettings } from './config';
export { startNameServer } from './embedded';
export { DEFAULT_SCOPE, LIMITS } from './limits';
export { Registry } from './registry';
export { namingService } from './server';

export type { NameServerOptions, RunningNameServer } from './embedded';
export type { BindingView, Change, ScopeRecord } from './records';
export type { ParentResolver, RegistryOptions, Resolution } from './registry';
