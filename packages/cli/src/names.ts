import { defaultNameServer, NamingClient } from '@backplane/naming-client';
import type { Binding } from '@backplane/proto/naming';
import { parseHostPort } from '@backplane/runtime';
import type { Command } from 'commander';
import { type ConnectionFlags, credentialsFrom, tokenFrom, withConnection } from './connection';
import { printJson, table } from './output';

interface Common extends ConnectionFlags {
  ns?: string;
  scope?: string;
  json?: boolean;
}

function client(o: Common): NamingClient {
  return new NamingClient({
    nameServer: o.ns ?? defaultNameServer(),
    token: tokenFrom(o),
    credentials: credentialsFrom(o),
  });
}

function row(b: Binding) {
  return {
    scope: b.scope,
    name: b.name,
    location: b.location ? `${b.location.host}:${b.location.port}` : '',
    types: b.types.join(','),
    lease: b.leaseExpiresAt
      ? `${Math.max(0, Math.round((b.leaseExpiresAt.getTime() - Date.now()) / 1000))}s`
      : '-',
    address: b.addressId,
  };
}

const COLUMNS = ['scope', 'name', 'location', 'types', 'lease'];

function withCommon(cmd: Command): Command {
  return withConnection(cmd)
    .option('--ns <host:port>', 'name server (default $BACKPLANE_NAMESERVER or 127.0.0.1:7000)')
    .option('--scope <scope>', 'scope (default: the default scope)')
    .option('--json', 'machine-readable output');
}

/** `backplane names …`: the name server from the command line. */
export function namesCommand(program: Command): void {
  const names = program.command('names').description('publish, find and watch servers in the name server');

  withCommon(names.command('ls [prefix]').description('list bindings'))
    .option('--inherited', 'include names visible through parent scopes')
    .action(async (prefix: string | undefined, o: Common & { inherited?: boolean }) => {
      const c = client(o);
      try {
        const all: Binding[] = [];
        for await (const b of c.listAll({
          scope: o.scope,
          prefix: prefix ?? '',
          includeInherited: o.inherited,
          pageSize: 500,
        })) {
          all.push(b);
        }
        if (o.json) printJson(all);
        else process.stdout.write(`${all.length ? table(all.map(row), COLUMNS) : 'no bindings'}\n`);
      } finally {
        c.close();
      }
    });

  withCommon(names.command('resolve <name>').description('find the server bound to a name'))
    .option('--type <service>', 'the service the server must implement')
    .action(async (name: string, o: Common & { type?: string }) => {
      const c = client(o);
      try {
        const r = await c.resolve(name, { scope: o.scope, expectedType: o.type });
        if (o.json) printJson(r);
        else if (r.binding) process.stdout.write(`${table([row(r.binding)], COLUMNS)}\n`);
      } finally {
        c.close();
      }
    });

  withCommon(
    names.command('bind <name> <hostport>').description('publish a server at host:port under a name'),
  )
    .option('--type <service...>', 'services the server implements')
    .option('--ttl <ms>', 'lease in ms (0 = no lease)', '0')
    .action(async (name: string, hostport: string, o: Common & { type?: string[]; ttl: string }) => {
      const { host, port } = parseHostPort(hostport);
      const c = client(o);
      try {
        const r = await c.bind(
          name,
          { host, port, metadata: {} },
          { scope: o.scope, types: o.type ?? [], leaseTtlMs: Number(o.ttl) },
        );
        if (o.json) printJson(r);
        else {
          process.stdout.write(
            `bound ${name} → ${host}:${port}\naddress id:   ${r.addressId}\nowner secret: ${r.ownerSecret}\n`,
          );
          process.stdout.write('keep the owner secret: unbind, keepalive and migrate need it\n');
        }
      } finally {
        c.close();
      }
    });

  withCommon(names.command('unbind <name>').description('remove a binding'))
    .requiredOption('--secret <secret>', 'the owner secret returned by bind')
    .action(async (name: string, o: Common & { secret: string }) => {
      const c = client(o);
      try {
        await c.unbind(name, o.secret, o.scope);
        if (o.json) printJson({ unbound: name });
        else process.stdout.write(`unbound ${name}\n`);
      } finally {
        c.close();
      }
    });

  withCommon(
    names.command('watch [name]').description('print the current bindings, then every change (Ctrl-C stops)'),
  )
    .option('--prefix', 'treat name as a prefix (no name = everything)')
    .action(async (name: string | undefined, o: Common & { prefix?: boolean }) => {
      const c = client(o);
      const controller = new AbortController();
      process.once('SIGINT', () => controller.abort());
      process.once('SIGTERM', () => controller.abort());
      try {
        for await (const ev of c.watch(
          name ?? '',
          { scope: o.scope, prefix: o.prefix || !name },
          { signal: controller.signal },
        )) {
          if (o.json) process.stdout.write(`${JSON.stringify(ev)}\n`);
          else if (ev.type === 'SYNCED') process.stdout.write(`-- synced at revision ${ev.revision}\n`);
          else if (ev.binding) {
            const r = row(ev.binding);
            process.stdout.write(`${ev.type.padEnd(9)} ${r.scope}/${r.name} ${r.location} ${r.types}\n`);
          }
        }
      } catch (err) {
        if (!controller.signal.aborted) throw err;
      } finally {
        c.close();
      }
    });

  const scope = names.command('scope').description('create and delete scopes');
  withCommon(scope.command('create <name>').description('create a scope'))
    .option('--parent <scope>', 'parent scope whose names it inherits', '')
    .action(async (name: string, o: Common & { parent: string }) => {
      const c = client(o);
      try {
        const s = await c.createScope(name, o.parent);
        if (o.json) printJson(s);
        else process.stdout.write(`created scope ${name}${o.parent ? ` (parent ${o.parent})` : ''}\n`);
      } finally {
        c.close();
      }
    });
  withCommon(scope.command('delete <name>').description('delete a scope'))
    .option('--force', 'also unbind its names')
    .action(async (name: string, o: Common & { force?: boolean }) => {
      const c = client(o);
      try {
        await c.deleteScope(name, o.force ?? false);
        if (o.json) printJson({ deleted: name });
        else process.stdout.write(`deleted scope ${name}\n`);
      } finally {
        c.close();
      }
    });
}
