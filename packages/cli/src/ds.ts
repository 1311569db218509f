import { DsAdmin } from '@backplane/ds-client';
import type { Command } from 'commander';
import { type ConnectionFlags, credentialsFrom, metadataFrom, withConnection } from './connection';
import { EXIT, printJson, table } from './output';

interface Common extends ConnectionFlags {
  coordinator?: string;
  json?: boolean;
}

function withCommon(cmd: Command): Command {
  return withConnection(cmd)
    .option(
      '--coordinator <host:port>',
      "ds coordinator's control address (default $BACKPLANE_DS_COORDINATOR or 127.0.0.1:7400)",
    )
    .option('--json', 'machine-readable output');
}

async function using<T>(o: Common, fn: (admin: DsAdmin) => Promise<T>): Promise<T> {
  const admin = new DsAdmin(o.coordinator ?? process.env.BACKPLANE_DS_COORDINATOR ?? '127.0.0.1:7400', {
    metadata: metadataFrom(o),
    credentials: credentialsFrom(o),
  });
  try {
    return await fn(admin);
  } finally {
    admin.close();
  }
}

function ms(value: number): string {
  return value.toFixed(1);
}

/** `backplane ds …`: the distributed-servers coordinator's nodes and clients, and draining a node. */
export function dsCommands(program: Command): void {
  const ds = program
    .command('ds')
    .description("distributed servers: list the coordinator's nodes and clients, drain a node");

  withCommon(
    ds
      .command('nodes')
      .description('the services and their client addresses, and every attached node with its traffic'),
  ).action((o: Common) =>
    using(o, async (admin) => {
      const status = await admin.status();
      if (o.json) {
        printJson(status);
        return;
      }
      const services = status.services.map((s) => ({
        service: s.name,
        address: s.address,
        pending: s.pendingStreams,
      }));
      process.stdout.write(`${table(services, ['service', 'address', 'pending'])}\n`);
      process.stdout.write(`data address ${status.dataAddress}, ${status.bindings} bindings\n\n`);
      if (status.nodes.length === 0) {
        process.stdout.write('no nodes attached\n');
        return;
      }
      const nodes = status.nodes.map((n) => ({
        node: n.nodeUrl,
        name: n.name,
        clients: n.clients,
        streams: n.streams,
        'bytes-to-node': n.bytesToNode,
        'bytes-from-node': n.bytesFromNode,
        'handoffs-out': n.handoffsOut,
        'handoffs-in': n.handoffsIn,
        'handoff-p50-ms': ms(n.handoffP50Ms),
        'handoff-p99-ms': ms(n.handoffP99Ms),
      }));
      process.stdout.write(
        `${table(nodes, [
          'node',
          'name',
          'clients',
          'streams',
          'bytes-to-node',
          'bytes-from-node',
          'handoffs-out',
          'handoffs-in',
          'handoff-p50-ms',
          'handoff-p99-ms',
        ])}\n`,
      );
    }),
  );

  withCommon(ds.command('clients').description('the clients the coordinator knows (bound or connected)'))
    .option('--name <name>', 'only clients of this service name')
    .option('--node <url>', 'only clients bound to this node (ds://<node>/<name>)')
    .action((o: Common & { name?: string; node?: string }) =>
      using(o, async (admin) => {
        const clients = await admin.clients({ name: o.name, nodeUrl: o.node });
        if (o.json) {
          printJson(clients);
          return;
        }
        const rows = clients.map((c) => ({
          client: c.clientUrl,
          name: c.name,
          node: c.nodeUrl || '(unbound)',
          streams: c.streams,
        }));
        if (rows.length > 0) process.stdout.write(`${table(rows, ['client', 'name', 'node', 'streams'])}\n`);
      }),
    );

  withCommon(
    ds
      .command('drain <nodeUrl>')
      .description("hand every client of a node (ds://<node>/<name>) to the service's other nodes"),
  )
    .option('--per-second <n>', "handoffs started per second (0 = the coordinator's default, 20)", '0')
    .action((nodeUrl: string, o: Common & { perSecond: string }) =>
      using(o, async (admin) => {
        const perSecond = Number(o.perSecond);
        if (!Number.isInteger(perSecond) || perSecond < 0)
          throw new Error(`--per-second wants a whole number ≥ 0, got "${o.perSecond}"`);
        let moved = 0;
        let failed = 0;
        for await (const r of admin.drain(nodeUrl, perSecond)) {
          if (r.error) failed++;
          else moved++;
          if (o.json) process.stdout.write(`${JSON.stringify(r)}\n`);
          else if (r.error) process.stdout.write(`${r.clientUrl} failed: ${r.error}\n`);
          else process.stdout.write(`${r.clientUrl} -> ${r.targetUrl}\n`);
        }
        if (!o.json) process.stderr.write(`${moved} moved, ${failed} failed\n`);
        if (failed > 0) process.exitCode = EXIT.error;
      }),
    );
}
