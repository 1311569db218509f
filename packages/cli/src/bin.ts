#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { dsCommands } from './ds';
import { ibpCommand } from './ibp';
import { namesCommand } from './names';
import { describeError, EXIT, exitCodeFor } from './output';
import { sharingCommands } from './sharing';
import { tsCommand } from './ts';
import { up } from './up';

const { version } = require('../package.json') as { version: string };

// grpc-js passes an IP target (--ns 127.0.0.1:7000 with --tls-ca) to TLS as the server name, and Node
// warns about it on every run (DEP0123); the certificate is still checked against the IP. Drop only that.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const code = rest.find((r) => r === 'DEP0123') ?? (rest[0] as { code?: string } | undefined)?.code;
  if (code === 'DEP0123') return;
  (emitWarning as (...a: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;

function parsePorts(value: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const pair of value.split(',').filter(Boolean)) {
    const [name, port] = pair.split('=');
    const n = Number(port);
    if (!name || !Number.isInteger(n) || n < 1 || n > 65535)
      throw new Error(`--ports wants name=port[,name=port…], got "${pair}"`);
    out[name] = n;
  }
  return out;
}

const program = new Command()
  .name('backplane')
  .description('Backplane: naming, IBP depots, tuple spaces, sharing and distributed servers over gRPC')
  .version(version)
  .exitOverride();

program
  .command('up')
  .description('start every service on its default port with embedded storage under ./data')
  .option('--data-dir <dir>', 'where services keep their data', process.env.BACKPLANE_DATA_ROOT ?? './data')
  .option('--host <host>', 'address services listen on', '127.0.0.1')
  .option('--ports <list>', 'port overrides, e.g. name-server=17000', '')
  .option('--nats', 'also start a local nats-server and use the distributed engines')
  .option('--nats-port <port>', 'port of the local nats-server', '4222')
  .option(
    '--cluster <n>',
    'with --nats: n nats-servers in one JetStream cluster and n sharing nodes (8400, 8401, …), the log on 3 replicas',
    '1',
  )
  .option('--log-level <level>', "services' log level", 'info')
  .option('--json-logs', "print the services' raw JSON log lines")
  .option('--for <ms>', 'stop after this long (0 = until Ctrl-C)', '0')
  .action(async (o: Record<string, string | boolean | undefined>) => {
    const code = await up({
      dataDir: o.dataDir as string,
      host: o.host as string,
      ports: parsePorts(o.ports as string),
      nats: Boolean(o.nats),
      natsPort: Number(o.natsPort),
      cluster: Number(o.cluster),
      logLevel: o.logLevel as string,
      jsonLogs: Boolean(o.jsonLogs),
      forMs: Number(o.for),
    });
    process.exitCode = code;
  });

namesCommand(program);
ibpCommand(program);
tsCommand(program);
sharingCommands(program);
dsCommands(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    return;
  }
  process.stderr.write(`error: ${describeError(err)}\n`);
  process.exitCode = exitCodeFor(err);
});
