// Bulk sends to tcp-sink.js (directly or through a relay): the same-run baseline of the IBP and ds benches.
import { connect, type Socket } from 'node:net';

const MiB = 1024 * 1024;

/** Connects to host:port, optionally from a given local address (a distinct client). */
export function dial(address: string, localAddress?: string): Promise<Socket> {
  const colon = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const s = connect({
      host: address.slice(0, colon),
      port: Number(address.slice(colon + 1)),
      localAddress,
    });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * Sends `count` copies of `buf` to a counting sink through `address` and waits for its count; MiB/s from
 * the first byte to the answer. Fails if the sink counted other than what was sent.
 */
export async function sendToSink(address: string, count: number, buf: Buffer): Promise<number> {
  const s = await dial(address);
  s.setNoDelay(true);
  const answer = new Promise<string>((resolve, reject) => {
    let text = '';
    s.on('data', (d: Buffer) => {
      text += d.toString();
    });
    s.on('end', () => resolve(text));
    s.on('error', reject);
  });
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    if (!s.write(buf)) await new Promise((r) => s.once('drain', r));
  }
  s.end();
  const got = Number(await answer);
  const seconds = (performance.now() - t0) / 1000;
  s.destroy();
  const sent = count * buf.length;
  if (got !== sent) throw new Error(`the sink counted ${got} bytes of ${sent}`);
  return sent / MiB / seconds;
}
