import { BackplaneError, statusName } from '@backplane/runtime';

/** Exit codes scripts can rely on: 0 ok, 1 other error, 2 usage, 10 + the gRPC status code otherwise. */
export const EXIT = { ok: 0, error: 1, usage: 2, grpcBase: 10 } as const;

export function exitCodeFor(err: unknown): number {
  if (err instanceof BackplaneError) return EXIT.grpcBase + err.code;
  return EXIT.error;
}

/** Prints rows as an aligned table (header in capitals). */
export function table(rows: Array<Record<string, string | number | undefined>>, columns: string[]): string {
  const cells = [
    columns.map((c) => c.toUpperCase()),
    ...rows.map((r) => columns.map((c) => String(r[c] ?? ''))),
  ];
  const widths = columns.map((_, i) => Math.max(...cells.map((row) => (row[i] as string).length)));
  return cells
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i] as number))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function describeError(err: unknown): string {
  if (err instanceof BackplaneError) return `${statusName(err.code)} (${err.reason}): ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}
