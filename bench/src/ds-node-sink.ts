// A ds node for the benchmarks: serves every client stream, counts its bytes and answers the count at
// the end (the same job as tcp-sink.ts, behind the coordinator). argv: <coordinator> <node id>
import type { Duplex } from 'node:stream';
import { DsService } from '@backplane/ds-client';

async function main() {
  const [coordinator, node] = process.argv.slice(2);
  const ds = await DsService.create('default', null, { coordinator, node });
  process.on('SIGTERM', () => void ds.close().then(() => process.exit(0)));
  console.log(`ds sink ready ${ds.url}`);
  const count = (s: Duplex) => {
    let n = 0;
    s.on('data', (d: Buffer) => {
      n += d.length;
    });
    s.on('end', () => s.end(String(n)));
    s.on('error', () => {});
  };
  for (;;) {
    const s = await ds.serve().catch(() => undefined);
    if (!s) return; // closed
    count(s);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
