import type { Duplex } from 'node:stream';
import { DsService } from '@backplane/ds-client';

/**
 * A ds server node for the fault runs: echoes every byte of every client stream, whether the client came
 * through serve() or was handed over (after another node died). Usage: node ds-echo-node.js <coordinator> <node>
 */
async function main(): Promise<void> {
  const [coordinator, node] = process.argv.slice(2);
  const ds = await DsService.create('default', null, { coordinator, node });
  const echo = (s: Duplex) => {
    s.on('error', () => undefined);
    s.pipe(s);
  };
  console.log(`echo node ready ${ds.url}`);
  const handoffs = (async () => {
    for (;;) {
      const client = await ds.receiveHandoff();
      console.log(`received ${client.getUrl()}: ${client.getMessage()?.toString() ?? ''}`);
      for (const s of client.getStreams()) echo(s);
    }
  })();
  const served = (async () => {
    for (;;) echo(await ds.serve());
  })();
  process.once('SIGTERM', () => {
    void ds.close(false).finally(() => process.exit(0));
  });
  await Promise.race([handoffs, served]);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
