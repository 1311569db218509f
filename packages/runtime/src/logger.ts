import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

const SECRET_FIELDS = [
  // bearer tokens and passwords
  'authorization',
  'token',
  'authToken',
  'password',
  'adminPassword',
  'secret',
  // name-server owner secrets
  'ownerSecret',
  // IBP capabilities (the key after '#' is a bearer secret)
  'cap',
  'capability',
  'readCap',
  'writeCap',
  'manageCap',
  'sourceReadCap',
  'targetWriteCap',
  'derivedCap',
  // ds node sessions
  'session',
];

/** Field names whose values must never reach a log line: at the top level and up to two levels down. */
export const REDACTED_PATHS = SECRET_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`]);

/** A logged grpc Metadata object, its secret values hidden (pino's redact runs before toJSON). */
function metadataSerializer(value: unknown): unknown {
  const m = value as { getMap?: () => Record<string, unknown> } | undefined;
  if (!m || typeof m.getMap !== 'function') return value;
  return Object.fromEntries(
    Object.entries(m.getMap()).map(([k, v]) => [k, SECRET_FIELDS.includes(k) ? '[redacted]' : v]),
  );
}

/**
 * The one logger of a process. Structured JSON to stdout; children carry the service name. Writes are
 * asynchronous (lines written while a write is in flight go out together), so logging every call does
 * not cost a system call per call; flushLogger() before exiting.
 */
export function createLogger(
  options: { level?: string; service?: string; destination?: NodeJS.WritableStream } = {},
): Logger {
  const log = pino(
    {
      level: options.level ?? 'info',
      base: options.service ? { service: options.service, pid: process.pid } : { pid: process.pid },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      serializers: { metadata: metadataSerializer },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
  if (options.service) namingLoggers.add(log);
  return log;
}

/** Loggers whose every line already carries a `service` field (pino would write a second one). */
const namingLoggers = new WeakSet<Logger>();

/** `log` with `service` on every line, unless it has that field already. */
export function serviceLogger(log: Logger, service: string): Logger {
  return namingLoggers.has(log) ? log : log.child({ service });
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
