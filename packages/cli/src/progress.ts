/** A one-line progress bar on stderr for transfers larger than a few MB (only on a terminal). */
export function progressBar(
  label: string,
  minBytes = 4 * 1024 * 1024,
): (done: number, total: number) => void {
  const tty = process.stderr.isTTY;
  let last = 0;
  const started = Date.now();
  return (done, total) => {
    if (!tty || (total >= 0 && total < minBytes)) return;
    const now = Date.now();
    if (now - last < 100 && done !== total) return;
    last = now;
    const mb = done / 1048576;
    const rate = mb / Math.max(0.001, (now - started) / 1000);
    const width = 30;
    const bar =
      total > 0
        ? `[${'#'.repeat(Math.round((done / total) * width)).padEnd(width)}] ${Math.floor((done / total) * 100)}%`
        : '';
    process.stderr.write(`\r${label} ${bar} ${mb.toFixed(1)} MiB ${rate.toFixed(1)} MiB/s`);
    if (done === total) process.stderr.write('\n');
  };
}
