import {
  formatTuple,
  parseTemplate,
  parseTuple,
  type TupleRecord,
  TupleSpaceClient,
} from '@backplane/tuplespace-client';
import type { Command } from 'commander';
import { type ConnectionFlags, credentialsFrom, withConnection } from './connection';
import { printJson, table } from './output';

interface Common extends ConnectionFlags {
  server?: string;
  user?: string;
  password?: string;
  json?: boolean;
}

function client(o: Common): TupleSpaceClient {
  const user = o.user ?? process.env.BACKPLANE_TS_USER;
  return new TupleSpaceClient(o.server, {
    user,
    password: o.password ?? process.env.BACKPLANE_TS_PASSWORD,
    credentials: credentialsFrom(o),
  });
}

function withCommon(cmd: Command): Command {
  // the tuple space authenticates users (--user/--password), not bearer tokens
  return withConnection(cmd, false)
    .option('--server <host:port>', 'tuple-space server (default $BACKPLANE_TS_ADDRESS or 127.0.0.1:8200)')
    .option('--user <name>', 'user (default $BACKPLANE_TS_USER; none = anonymous)')
    .option('--password <password>', 'password (default $BACKPLANE_TS_PASSWORD)')
    .option('--json', 'machine-readable output');
}

const row = (r: TupleRecord) => ({
  id: r.id,
  tuple: formatTuple(r.tuple),
  expires: r.expiresAt ? new Date(r.expiresAt).toISOString() : '',
});

function printRecords(records: TupleRecord[], o: Common): void {
  if (o.json)
    printJson(records.map((r) => ({ id: r.id, tuple: formatTuple(r.tuple), expiresAt: r.expiresAt })));
  else if (records.length > 0)
    process.stdout.write(`${table(records.map(row), ['id', 'tuple', 'expires'])}\n`);
}

async function using<T>(o: Common, fn: (c: TupleSpaceClient) => Promise<T>): Promise<T> {
  const c = client(o);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

/**
 * `backplane ts …`: tuple spaces from the command line. Tuples and templates use the readable syntax of
 * @backplane/tuplespace-client: `'("job", 42, owner="ann")'`, templates with `*`, `?int`, `>3`, `1..10`, `"pre"*`.
 */
export function tsCommand(program: Command): void {
  const ts = program.command('ts').description('write, read, take, scan and watch tuples in tuple spaces');

  withCommon(ts.command('spaces').description('the spaces you may see'))
    .option('--create <name>', 'create a space first')
    .action((o: Common & { create?: string }) =>
      using(o, async (c) => {
        if (o.create) await c.createSpace(o.create, { ifNotExists: true });
        const spaces = await c.listSpaces();
        if (o.json) printJson(spaces);
        else
          process.stdout.write(
            `${table(
              spaces.map((s) => ({ space: s.name, tuples: s.tuples, you: s.permissions.join(',') })),
              ['space', 'tuples', 'you'],
            )}\n`,
          );
      }),
    );

  withCommon(ts.command('write <space> <tuple>').description('write a tuple; prints its id'))
    .option('--ttl <ms>', 'time to live in ms (0 = forever)', '0')
    .action((space: string, text: string, o: Common & { ttl: string }) =>
      using(o, async (c) => {
        const id = await c.space(space).write(parseTuple(text), { ttlMs: Number(o.ttl) });
        if (o.json) printJson({ id });
        else process.stdout.write(`${id}\n`);
      }),
    );

  for (const [name, take] of [
    ['read', false],
    ['take', true],
  ] as const) {
    withCommon(
      ts.command(`${name} <space> <template>`).description(`${name} the oldest match (exit 15 when none)`),
    )
      .option('--wait <ms>', 'wait up to this long for a match')
      .action((space: string, text: string, o: Common & { wait?: string }) =>
        using(o, async (c) => {
          const sp = c.space(space);
          const t = parseTemplate(text);
          const r = o.wait
            ? await (take
                ? sp.waitToTake(t, { timeoutMs: Number(o.wait) })
                : sp.waitToRead(t, { timeoutMs: Number(o.wait) }))
            : await (take ? sp.take(t) : sp.read(t));
          if (!r) {
            if (o.json) printJson(null);
            process.exitCode = 15;
            return;
          }
          printRecords([r], o);
        }),
      );
  }

  withCommon(ts.command('scan <space> <template>').description('every match, oldest first'))
    .option('--limit <n>', 'at most this many (0 = the server maximum)', '0')
    .action((space: string, text: string, o: Common & { limit: string }) =>
      using(o, async (c) => {
        const records: TupleRecord[] = [];
        for await (const r of c.space(space).scan(parseTemplate(text), { limit: Number(o.limit) }))
          records.push(r);
        printRecords(records, o);
      }),
    );

  withCommon(ts.command('watch <space> <template>').description('print matching events until Ctrl-C'))
    .option('--kinds <kinds>', 'comma-separated WRITE,TAKE,DELETE,EXPIRE (default all)')
    .action((space: string, text: string, o: Common & { kinds?: string }) =>
      using(o, async (c) => {
        const kinds = o.kinds?.split(',').map((k) => k.trim().toUpperCase()) as
          | Array<'WRITE' | 'TAKE' | 'DELETE' | 'EXPIRE'>
          | undefined;
        const ac = new AbortController();
        process.once('SIGINT', () => ac.abort());
        const events = await c.space(space).events(parseTemplate(text), { kinds, signal: ac.signal });
        try {
          for await (const ev of events) {
            if (o.json)
              process.stdout.write(
                `${JSON.stringify({ seq: ev.seq, kind: ev.kind, id: ev.record.id, tuple: formatTuple(ev.record.tuple) })}\n`,
              );
            else
              process.stdout.write(
                `${ev.seq}\t${ev.kind}\t${ev.record.id}\t${formatTuple(ev.record.tuple)}\n`,
              );
          }
        } catch (err) {
          if (!ac.signal.aborted) throw err;
        }
      }),
    );

  withCommon(ts.command('factories <space>').description("a space's factory stack, top first"))
    .option('--add <factory>', 'push a factory (ADMIN)')
    .option('--handler <command=handler>', 'install a handler in the top extendable factory (ADMIN)')
    .option('--remove <index>', 'remove the factory at this position (ADMIN)')
    .action((space: string, o: Common & { add?: string; handler?: string; remove?: string }) =>
      using(o, async (c) => {
        const sp = c.space(space);
        if (o.remove !== undefined) await sp.removeFactory(Number(o.remove));
        if (o.add) await sp.addFactory(o.add);
        if (o.handler) {
          const [command, handler] = o.handler.split('=');
          if (!command || !handler) throw new Error('--handler takes COMMAND=handler-module');
          await sp.addHandler(command, handler);
        }
        const stack = await sp.factories();
        if (o.json) printJson(stack);
        else
          process.stdout.write(
            `${table(
              stack.map((f, i) => ({
                index: i,
                factory: f.name,
                handlers:
                  f.name === 'basic'
                    ? '(built-in commands)'
                    : Object.entries(f.handlers)
                        .map(([k, v]) => `${k}=${v}`)
                        .join(' '),
              })),
              ['index', 'factory', 'handlers'],
            )}\n`,
          );
      }),
    );

  withCommon(
    ts.command('command <space> <name> [arg]').description('run any command with an argument tuple'),
  ).action((space: string, name: string, arg: string | undefined, o: Common) =>
    using(o, async (c) => {
      const r = await c.space(space).command(name, arg ? parseTuple(arg) : undefined);
      if (o.json) printJson({ result: formatTuple(r.result), count: r.count, ids: r.ids });
      else process.stdout.write(`${formatTuple(r.result)}\n`);
    }),
  );
}
