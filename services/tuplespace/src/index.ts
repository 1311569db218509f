export type { AclEntry } from './access';
export { ADMIN_GROUP, ANONYMOUS, permissionsOf } from './access';
export { basicFactory, MAX_SCAN } from './basic';
export type {
  Invocation,
  Outcome,
  Permission,
  PluginModule,
  Principal,
  SpaceHandle,
  TSFactory,
  TSHandler,
} from './command';
export { tupleSpaceSettings } from './config';
export type { RunningTupleSpaceServer, TupleSpaceServerOptions } from './embedded';
export { startTupleSpaceServer } from './embedded';
export { extendableFactory, PluginLoader } from './plugins';
export { counterHandler } from './plugins/counter';
export { staleTupleHandler } from './plugins/stale-tuple';
export { tupleSpaceService } from './server';
export { LIMITS, matches, validateTemplate, validateTuple } from './tuple';
export { DEFAULT_SPACE, TupleSpaces } from './tuplespaces';
