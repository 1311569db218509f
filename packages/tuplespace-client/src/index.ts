export type { AclEntry, EventKindName, Options, PermissionName, SpaceEvent } from './client';
export { DEFAULT_ADDRESS, Space, Transaction, TupleSpaceClient } from './client';
export { formatTuple, parseTemplate, parseTuple } from './syntax';
export type {
  Field,
  JsValue,
  Matcher,
  Template,
  TemplateItem,
  Tuple,
  TupleRecord,
  TypeName,
  Value,
} from './tuples';
export { fieldsByName, fromValue, M, named, template, toValue, tuple, V, values, where } from './tuples';
