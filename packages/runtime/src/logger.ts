import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

/** Field names whose values must never reach a log line. */
export const REDACTED_PATHS = [
  'ownerSecret',
  '*.ownerSecret',
  'authorization',
  '*.authorization',
  'token',
  '*.token',
  'password',
  '*.password',
];

/**
 * The one logger of a process. Structured JSON to stdout; children carry the service name. Writes are
 * asynchronous (lines written while a write is in flight go out together), so logging every call does
 * not cost a system call per call; flushLogger() before exiting.
 */
export function createLogger(options: { level?: string; service?: string } = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: options.service ? { service: options.service, pid: process.pid } : { pid: process.pid },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ dest: 1, sync: false }),
  );
}

/** Writes out buffered log lines (bounded wait). */
export function flushLogger(log: Logger, timeoutMs = 1000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    log.flush(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** A logger that writes nothing, for tests and libraries used without one. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
