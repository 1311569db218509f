/**
 * What client packages log through: the four levels of a pino-style logger, an object of fields first
 * (pino's Logger, which services pass in, fits as it is). Clients need no logging library of their own.
 */
export interface ClientLogger {
  debug(fields: object, message?: string): void;
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
}

const nothing = (): void => {};

/** A logger that writes nothing: the default when the application passes none. */
export const SILENT_LOGGER: ClientLogger = Object.freeze({
  debug: nothing,
  info: nothing,
  warn: nothing,
  error: nothing,
});
