export * from './gen/backplane/ds/v1/ds';

/** The largest handoff message (the seed's saga::buffer) a coordinator takes: 1 MiB. */
export const DS_MAX_MESSAGE_BYTES = 1024 * 1024;
