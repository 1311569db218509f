import { setFlagsFromString } from 'node:v8';
import { ConfigError, type ConfigOf, type ConfigSpec, loadConfig } from './config';
import { createLogger, type Logger } from './logger';
import { closeOnSignals } from './server';

/**
 * V8 grows the old generation by up to 4× the live heap between full collections; a service that keeps a
 * large index in memory then sits at several times the memory it needs (the name server with 100,000 names:
 * ~280 MB RSS, of which ~60 MB live). Growing by a fixed percentage keeps RSS near the live set for the cost
 * of more frequent (incremental, concurrent) collections. BACKPLANE_HEAP_GROWING_PERCENT overrides it;
 * 0 restores V8's default.
 */
export const DEFAULT_HEAP_GROWING_PERCENT = 30;

function tuneHeap(defaultPercent: number): void {
  const raw = process.env.BACKPLANE_HEAP_GROWING_PERCENT;
  const percent = raw === undefined || raw === '' ? defaultPercent : Number(raw);
  if (!Number.isInteger(percent) || percent < 0 || percent > 400) {
    throw new ConfigError(`invalid BACKPLANE_HEAP_GROWING_PERCENT: must be 0-400, got "${raw}"`);
  }
  if (percent > 0) setFlagsFromString(`--heap-growing-percent=${percent}`);
}

/**
 * glibc's malloc hands freed memory at the top of its heap back to the kernel once more than 128 KiB is
 * free there. A relay allocates a Buffer per socket read and V8 frees them in bulk at each collection, so
 * the heap top swings by tens of MiB; every swing was trimmed and then page-faulted back in. The ds
 * coordinator spent 3 s of system time per GiB relayed that way, against 0.8 s with a 256 MiB threshold,
 * and relayed 270 instead of 700 MiB/s (measured). The variable is read when the process starts, so whoever
 * starts a relaying service sets it: `backplane up`, the container entrypoint and the benchmarks.
 */
export const RELAY_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_TRIM_THRESHOLD_: String(256 * 1024 * 1024),
};

/** Whether this process started with the malloc setting a relaying service wants (Linux/glibc only). */
export function hasRelayMallocEnv(): boolean {
  return (
    process.platform !== 'linux' || Object.keys(RELAY_MALLOC_ENV).every((k) => process.env[k] !== undefined)
  );
}

export interface MainOptions {
  /**
   * The service's default for BACKPLANE_HEAP_GROWING_PERCENT. A service that relays bulk bytes wants 0
   * (V8's default): every socket read allocates a Buffer, and with a 30% heap growth V8 collects so often
   * that the ds coordinator spent 4× the user CPU per GiB relayed (0.9 vs 0.22 s/GiB, measured).
   */
  heapGrowingPercent?: number;
}

/**
 * Runs a service's main: a configuration error prints one line naming the setting and exits 2; any
 * other start-up failure prints the error and exits 1.
 */
export function runMain(main: () => Promise<unknown>, options: MainOptions = {}): void {
  Promise.resolve()
    .then(() => {
      tuneHeap(options.heapGrowingPercent ?? DEFAULT_HEAP_GROWING_PERCENT);
      return main();
    })
    .catch((err: unknown) => {
      if (err instanceof ConfigError) {
        process.stderr.write(`configuration error: ${err.message}\n`);
        process.exit(2);
      }
      process.stderr.write(
        `failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exit(1);
    });
}

/**
 * The whole main of a service: load and validate its settings, create the process logger, start it, and
 * close it cleanly on SIGTERM/SIGINT. `start` maps the settings to the service's own options.
 */
export function runService<S extends ConfigSpec, R extends { close(): Promise<void>; log: Logger }>(
  spec: S,
  name: string,
  start: (config: ConfigOf<S>, log: Logger) => Promise<R>,
  options: MainOptions = {},
): void {
  runMain(async () => {
    const config = loadConfig(spec);
    const level = (config as { logLevel?: string }).logLevel;
    const log = createLogger({ level, service: name });
    const running = await start(config, log);
    closeOnSignals(running);
  }, options);
}
