// A front-end node: serves the farm's job-submission protocol to TCP clients that connect through the ds
// coordinator. Each owner's jobs belong to one front-end node; a client that lands on the wrong node is
// handed off to the right one with its owner name as the handoff message, on the same socket.
//
// Protocol (lines): client "HELLO <owner>" → "WELCOME <owner> <node>"; client "JOB <text>" → later
// "DONE <id> <worker> <output>". A client sends jobs only after WELCOME.
import { createInterface } from 'node:readline';
import type { Duplex } from 'node:stream';
import { DsService } from '@backplane/ds-client';
import { template, tuple, values } from '@backplane/tuplespace-client';
import { status } from '@grpc/grpc-js';
import { connectBackplane, FARM, increment } from './backplane';

const NODE = process.env.FRONT_NODE ?? 'front-a';
const NODES = (process.env.FRONT_NODES ?? 'front-a,front-b').split(',');

/** The node that owns an owner's jobs: a stable hash over the configured nodes. */
export function ownerNode(owner: string, nodes: string[] = NODES): string {
  let h = 0;
  for (const c of owner) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return nodes[h % nodes.length] as string;
}

async function main(): Promise<void> {
  const bp = await connectBackplane();
  const ds = await DsService.create(FARM.dsService, null, { coordinator: bp.dsCoordinator, node: NODE });
  // the farm publishes where clients submit jobs (the ds service's address; every front end is behind
  // it) and each node under its own name
  const colon = ds.serviceAddress.lastIndexOf(':');
  const location = {
    host: ds.serviceAddress.slice(0, colon),
    port: Number(ds.serviceAddress.slice(colon + 1)),
    metadata: { node: ds.url },
  };
  await bp.names.bind(`job-farm/${NODE}`, location, { types: ['jobfarm.v1.FrontEnd'] });
  await bp.names
    .bind('job-farm/submit', location, { types: ['jobfarm.v1.FrontEnd'] })
    .catch((err: unknown) => {
      if ((err as { code?: number }).code !== status.ALREADY_EXISTS) throw err; // another node was first
    });

  /** Runs the conversation with an owner whose jobs this node owns. */
  const converse = (stream: Duplex, owner: string) => {
    stream.write(`WELCOME ${owner} ${NODE}\n`);
    const lines = createInterface({ input: stream });
    lines.on('line', (line) => {
      if (!line.startsWith('JOB ')) return;
      submit(stream, owner, line.slice(4)).catch((err: unknown) => {
        stream.write(`ERROR ${(err as Error).message}\n`);
      });
    });
    stream.on('error', () => undefined);
  };

  const submit = async (stream: Duplex, owner: string, text: string) => {
    const id = await increment(bp.props, FARM.nextId);
    // the input goes to a depot; the job tuple carries a read-only capability to it
    const input = await bp.ibp.allocate(Buffer.byteLength(text), { data: Buffer.from(text) });
    const inputCap = await bp.ibp.derive(input.readCap);
    await bp.jobs.write(tuple('job', id, owner, inputCap));
    await increment(bp.props, FARM.submitted);
    const result = await bp.jobs.waitToTake(template('result', id, owner, String, String), {
      timeoutMs: 120_000,
    });
    const [, , , outputCap, worker] = values(result.tuple) as [string, number, string, string, string];
    const output = (await bp.ibp.read(outputCap)).toString();
    stream.write(`DONE ${id} ${worker} ${output}\n`);
  };

  // new clients: read HELLO, then keep them or hand them to the owner's node
  void (async () => {
    for (;;) {
      const stream = await ds.serve();
      const client = ds.getClient(stream);
      const lines = createInterface({ input: stream });
      lines.once('line', (hello) => {
        lines.close();
        const owner = hello.replace(/^HELLO\s+/, '').trim();
        const home = ownerNode(owner);
        if (home === NODE) return converse(stream, owner);
        client.setMessage(owner);
        ds.handoffTo(`ds://${home}/${FARM.dsService}`, client, 10_000).then(
          () => console.log(`${NODE} handed ${owner} to ${home}`),
          (err: unknown) => stream.end(`ERROR ${(err as Error).message}\n`),
        );
      });
    }
  })();

  // clients handed to this node: the message says whose they are; the socket is the same
  void (async () => {
    for (;;) {
      const client = await ds.receiveHandoff();
      const owner = client.getMessage()?.toString() ?? '';
      console.log(`${NODE} received ${owner} from another node`);
      for (const stream of client.getStreams()) converse(stream, owner);
    }
  })();

  console.log(`${NODE} ready at ${ds.url}`);
  process.on('SIGTERM', () => {
    void ds.close(false).finally(() => {
      bp.close();
      process.exit(0);
    });
  });
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(`${NODE} failed:`, err);
    process.exit(1);
  });
}
