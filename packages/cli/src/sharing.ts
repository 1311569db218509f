import { SharedEvents, SharedProperties, SharingConnection } from '@backplane/sharing-client';
import type { Command } from 'commander';
import { type ConnectionFlags, credentialsFrom, metadataFrom, withConnection } from './connection';
import { printJson, table } from './output';

interface Common extends ConnectionFlags {
  server?: string;
  json?: boolean;
}

function withCommon(cmd: Command): Command {
  return withConnection(cmd)
    .option(
      '--server <url>',
      'sharing node or bootstrap URL (default $BACKPLANE_SHARING_URL or boot@127.0.0.1:8400)',
    )
    .option('--json', 'machine-readable output');
}

async function using<T>(o: Common, fn: (c: SharingConnection) => Promise<T>): Promise<T> {
  const c = new SharingConnection(o.server ?? process.env.BACKPLANE_SHARING_URL ?? 'boot@127.0.0.1:8400', {
    credentials: credentialsFrom(o),
    metadata: metadataFrom(o),
  });
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

/** Stops on Ctrl-C (or after --for ms). */
function untilInterrupted(forMs?: string): AbortSignal {
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  if (forMs && Number(forMs) > 0) setTimeout(() => ac.abort(), Number(forMs)).unref();
  return ac.signal;
}

/** `backplane kv …` and `backplane events …`: SharedProperties and SharedEvents from the command line. */
export function sharingCommands(program: Command): void {
  const kv = program.command('kv').description('SharedProperties: get, put, rm, ls and watch keys');

  withCommon(kv.command('get <key>').description('print a value (exit 4 when absent)')).action(
    (key: string, o: Common) =>
      using(o, async (c) => {
        const p = await new SharedProperties(c).get(key);
        if (!p) {
          process.exitCode = 4;
          if (o.json) printJson(null);
          else process.stderr.write(`${key}: not found\n`);
          return;
        }
        if (o.json) printJson({ key: p.key, value: p.text(), revision: p.revision, expiresAt: p.expiresAt });
        else process.stdout.write(`${p.text()}\n`);
      }),
  );

  withCommon(kv.command('put <key> <value>').description('set a value; prints its revision'))
    .option('--ttl <ms>', 'time to live in ms (0 = none)', '0')
    .option('--if-revision <rev>', 'only if the key is at this revision (0 = only if absent)')
    .action((key: string, value: string, o: Common & { ttl: string; ifRevision?: string }) =>
      using(o, async (c) => {
        const props = new SharedProperties(c);
        const ttlMs = Number(o.ttl);
        const revision =
          o.ifRevision === undefined
            ? await props.put(key, value, { ttlMs })
            : await props.compareAndSet(key, Number(o.ifRevision), value, { ttlMs });
        if (o.json) printJson({ revision });
        else process.stdout.write(`${revision}\n`);
      }),
    );

  withCommon(kv.command('rm <key>').description('remove a key')).action((key: string, o: Common) =>
    using(o, async (c) => {
      const removed = await new SharedProperties(c).remove(key);
      if (o.json) printJson({ removed });
      else if (!removed) process.stderr.write(`${key}: not found\n`);
    }),
  );

  withCommon(kv.command('ls [prefix]').description('keys under a prefix, in order')).action(
    (prefix: string | undefined, o: Common) =>
      using(o, async (c) => {
        const rows = [];
        for await (const p of new SharedProperties(c).list(prefix ?? ''))
          rows.push({ key: p.key, value: p.text(), revision: p.revision });
        if (o.json) printJson(rows);
        else if (rows.length > 0) process.stdout.write(`${table(rows, ['key', 'value', 'revision'])}\n`);
      }),
  );

  withCommon(
    kv.command('watch <key>').description('print the current values, then every change, until Ctrl-C'),
  )
    .option('--prefix', 'watch every key starting with <key>')
    .option('--from <revision>', 'every change from this revision instead of the current values')
    .option('--for <ms>', 'stop after this long')
    .action((key: string, o: Common & { prefix?: boolean; from?: string; for?: string }) =>
      using(o, async (c) => {
        const signal = untilInterrupted(o.for);
        try {
          for await (const ch of new SharedProperties(c).watch(key, {
            prefix: o.prefix,
            fromRevision: o.from ? Number(o.from) : undefined,
            signal,
          })) {
            if (o.json)
              printJson({ kind: ch.kind, key: ch.key, revision: ch.revision, value: ch.property?.text() });
            else
              process.stdout.write(
                `${ch.revision} ${ch.kind} ${ch.key}${ch.property ? ` ${ch.property.text()}` : ''}\n`,
              );
          }
        } catch (err) {
          if (!signal.aborted) throw err;
        }
      }),
    );

  const events = program.command('events').description('SharedEvents: publish and subscribe');

  withCommon(events.command('pub <topic> <event>').description('publish an event')).action(
    (topic: string, event: string, o: Common) =>
      using(o, async (c) => {
        // with durable events on, the stored event's sequence
        const sequence = await new SharedEvents(c).publish(topic, event);
        if (o.json) printJson({ sequence: sequence ?? null });
        else if (sequence !== undefined) process.stdout.write(`sequence ${sequence}\n`);
      }),
  );

  withCommon(
    events.command('sub <topic>').description("print events on a topic ('*', '>' allowed) until Ctrl-C"),
  )
    .option('--count <n>', 'stop after n events')
    .option('--for <ms>', 'stop after this long')
    .option(
      '--durable <name>',
      'a durable subscription (the server keeps events): each printed event is acknowledged',
    )
    .option('--from-sequence <n>', 'a new durable subscription: start at this sequence')
    .action(
      (
        topic: string,
        o: Common & { count?: string; for?: string; durable?: string; fromSequence?: string },
      ) =>
        using(o, async (c) => {
          const signal = untilInterrupted(o.for);
          const max = o.count ? Number(o.count) : Number.POSITIVE_INFINITY;
          let n = 0;
          if (o.durable) {
            const ended = new AbortController();
            const stop = () => ended.abort();
            signal.addEventListener('abort', stop, { once: true });
            let failure: unknown;
            const sub = await new SharedEvents(c).subscribe(
              topic,
              (_se, t, value, e) => {
                if (n >= max) throw new Error('enough events: left for the next subscriber');
                if (o.json) printJson({ topic: t, value, sequence: e.sequence, redelivered: e.redelivered });
                else process.stdout.write(`${e.sequence} ${t} ${value}\n`);
                if (++n >= max) stop();
              },
              {
                durable: o.durable,
                fromSequence: o.fromSequence ? Number(o.fromSequence) : undefined,
                onError: (err) => {
                  failure = err;
                  stop();
                },
              },
            );
            if (!ended.signal.aborted)
              await new Promise((r) => ended.signal.addEventListener('abort', r, { once: true }));
            await sub.unsubscribe();
            if (failure) throw failure;
            return;
          }
          for await (const e of new SharedEvents(c).events(topic, { signal })) {
            if (o.json) printJson({ topic: e.topic, value: e.value });
            else process.stdout.write(`${e.topic} ${e.value}\n`);
            if (++n >= max) break;
          }
        }),
    );
}
