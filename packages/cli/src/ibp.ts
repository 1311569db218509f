import { type AreaType, IbpClient } from '@backplane/ibp-client';
import type { Command } from 'commander';
import { type ConnectionFlags, credentialsFrom, tokenFrom, withConnection } from './connection';
import { printJson, table } from './output';
import { progressBar } from './progress';

interface Common extends ConnectionFlags {
  depot?: string;
  json?: boolean;
}

function client(o: Common): IbpClient {
  return new IbpClient({ depot: o.depot, token: tokenFrom(o), credentials: credentialsFrom(o) });
}

function withCommon(cmd: Command): Command {
  return withConnection(cmd)
    .option(
      '--depot <host:port>',
      'depot for allocate/status (default $BACKPLANE_IBP_DEPOT or 127.0.0.1:6714)',
    )
    .option('--json', 'machine-readable output');
}

const TYPES: AreaType[] = ['BYTE_ARRAY', 'BUFFER', 'FIFO', 'CIRCULAR_QUEUE'];

/** `backplane ibp …`: IBP depots from the command line. Capabilities are arguments; the depot is in them. */
export function ibpCommand(program: Command): void {
  const ibp = program.command('ibp').description('allocate, store, read and copy in IBP depots');

  withCommon(
    ibp.command('allocate <size>').description('allocate an area of <size> bytes; prints its capabilities'),
  )
    .option('--type <type>', `one of ${TYPES.join(', ')}`, 'BYTE_ARRAY')
    .option('--volatile', 'VOLATILE reliability (default STABLE)')
    .option('--duration <seconds>', 'seconds from now until the area is purged (0 = permanent)', '0')
    .action(async (size: string, o: Common & { type: string; volatile?: boolean; duration: string }) => {
      const type = o.type.toUpperCase() as AreaType;
      if (!TYPES.includes(type)) throw new Error(`--type must be one of ${TYPES.join(', ')}`);
      const c = client(o);
      try {
        const caps = await c.allocate(Number(size), {
          type,
          reliability: o.volatile ? 'VOLATILE' : 'STABLE',
          duration: Number(o.duration),
        });
        if (o.json) printJson(caps);
        else
          process.stdout.write(
            `read:   ${caps.readCap}\nwrite:  ${caps.writeCap}\nmanage: ${caps.manageCap}\n`,
          );
      } finally {
        c.close();
      }
    });

  withCommon(ibp.command('store <writeCap> <file>').description('store a file ("-" = stdin with --size)'))
    .option('--size <bytes>', 'byte count when reading stdin')
    .action(async (cap: string, file: string, o: Common & { size?: string }) => {
      const c = client(o);
      try {
        const source = file === '-' ? process.stdin : file;
        const r = await c.store(cap, source, {
          size: o.size === undefined ? undefined : Number(o.size),
          onProgress: progressBar('store'),
        });
        if (o.json) printJson(r);
        else process.stdout.write(`stored ${r.stored} bytes (area holds ${r.currentSize})\n`);
      } finally {
        c.close();
      }
    });

  withCommon(ibp.command('read <readCap> [file]').description('read an area to a file (default stdout)'))
    .option('--offset <bytes>', 'where to start', '0')
    .option('--size <bytes>', 'how many bytes (-1 = all)', '-1')
    .action(async (cap: string, file: string | undefined, o: Common & { offset: string; size: string }) => {
      const c = client(o);
      try {
        const n = await c.read(
          cap,
          { offset: Number(o.offset), size: Number(o.size), onProgress: progressBar('read') },
          file ?? process.stdout,
        );
        if (file) process.stderr.write(`read ${n} bytes into ${file}\n`);
      } finally {
        c.close();
      }
    });

  withCommon(
    ibp.command('probe <manageCap>').description('reference counts, size and attributes of an area'),
  ).action(async (cap: string, o: Common) => {
    const c = client(o);
    try {
      const p = await c.probe(cap);
      if (o.json) printJson(p);
      else {
        const row = {
          size: `${p.currentSize}/${p.maxSize}`,
          refs: `r${p.readRefCount} w${p.writeRefCount}`,
          reliability: p.attributes?.reliability === 2 ? 'VOLATILE' : 'STABLE',
          type: TYPES[(p.attributes?.type ?? 1) - 1],
          'time left': Number(p.timeLeft) < 0 ? 'permanent' : `${p.timeLeft}s`,
        };
        process.stdout.write(`${table([row], Object.keys(row))}\n`);
      }
    } finally {
      c.close();
    }
  });

  withCommon(
    ibp.command('copy <sourceReadCap> <targetWriteCap>').description('third-party copy between depots'),
  )
    .option('--offset <bytes>', 'where to start', '0')
    .option('--size <bytes>', 'how many bytes (-1 = all)', '-1')
    .action(async (src: string, dst: string, o: Common & { offset: string; size: string }) => {
      const c = client(o);
      try {
        const n = await c.copy(src, dst, { offset: Number(o.offset), size: Number(o.size) });
        if (o.json) printJson({ copied: n });
        else process.stdout.write(`copied ${n} bytes\n`);
      } finally {
        c.close();
      }
    });

  withCommon(ibp.command('status').description("capacity and use of the depot's pools")).action(
    async (o: Common) => {
      const c = client(o);
      try {
        const s = await c.status();
        if (o.json) printJson(s);
        else {
          const row = (pool: string, p?: { capacity: number; used: number; allocations: number }) => ({
            pool,
            capacity: p?.capacity,
            used: p?.used,
            areas: p?.allocations,
          });
          process.stdout.write(
            `${table([row('stable', s.stable), row('volatile', s.volatile)], ['pool', 'capacity', 'used', 'areas'])}\n`,
          );
        }
      } finally {
        c.close();
      }
    },
  );
}
