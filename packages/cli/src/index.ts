export { EXIT, exitCodeFor, table } from './output';
export type { ServiceEntry } from './services';
export { SERVICES } from './services';
export type { UpOptions } from './up';
export { up } from './up';
