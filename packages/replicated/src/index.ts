// A deterministic state machine fed by an ordered log, with two logs behind one interface: a local log
// (level) on one node, a NATS JetStream stream across many. See README.md for the design and its argument.
export type { JetStreamLogOptions } from './jetstream-log';
export { JetStreamLog } from './jetstream-log';
export type { LocalLogOptions } from './local-log';
export { LocalLog } from './local-log';
export type { Following, LogEntry, ReplicatedLog, Snapshot } from './log';
export { BARRIER_ID, NOT_APPENDED } from './log';
export type { CommandCodec, Consistency, ReplicaOptions, StateMachine } from './replica';
export { Replica } from './replica';
