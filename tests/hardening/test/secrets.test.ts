import { DsAdmin, DsService } from '@backplane/ds-client';
import { IbpClient } from '@backplane/ibp-client';
import { NamingClient } from '@backplane/naming-client';
import { bearerMetadata } from '@backplane/runtime';
import { tempDir } from '@backplane/runtime/testing';
import { SharedProperties, SharingConnection } from '@backplane/sharing-client';
import { TupleSpaceClient, template, tuple } from '@backplane/tuplespace-client';
import { SERVICE_NAMES, type ServiceName, ServiceProcess, TS_ADMIN } from '../src/services';

const TOKEN = 'bearer-token-that-must-not-be-logged';

/** Calls with secrets (right and wrong) against one service; returns the secrets it used. */
async function exercise(name: ServiceName, p: ServiceProcess): Promise<string[]> {
  const metadata = bearerMetadata(TOKEN);
  switch (name) {
    case 'name-server': {
      const c = new NamingClient({ nameServer: p.address, token: TOKEN });
      const b = await c.bind('s', { host: '10.0.0.1', port: 1, metadata: {} });
      await c.unbind('s', `${b.ownerSecret}x`).catch(() => undefined);
      await c.keepAlive(b.addressId, 'wrong-owner-secret').catch(() => undefined);
      await c.unbind('s', b.ownerSecret);
      c.close();
      return [b.ownerSecret, 'wrong-owner-secret'];
    }
    case 'ibp-depot': {
      const c = new IbpClient({ depot: p.address, token: TOKEN });
      const caps = await c.allocate(100, { data: Buffer.alloc(100) });
      await c.read(caps.writeCap).catch(() => undefined);
      await c.read(`${caps.readCap.split('#')[0]}#forgedkey/READ`).catch(() => undefined);
      await c.probe(caps.manageCap);
      c.close();
      return [caps.readCap, caps.writeCap, caps.manageCap].map(
        (cap) => (cap.split('#')[1] as string).split('/')[0] as string,
      );
    }
    case 'tuplespace': {
      const admin = new TupleSpaceClient(p.address, TS_ADMIN);
      await admin.putUser('ann', 'ann-secret-password');
      const wrong = new TupleSpaceClient(p.address, { user: 'ann', password: 'wrong-secret-password' });
      await wrong
        .space('default')
        .write(tuple('x'))
        .catch(() => undefined);
      await admin.space('default').write(tuple('x'));
      await admin.space('default').take(template('x'));
      admin.close();
      wrong.close();
      return [TS_ADMIN.password, 'ann-secret-password', 'wrong-secret-password'];
    }
    case 'sharing': {
      const conn = new SharingConnection(p.address, { metadata });
      await new SharedProperties(conn).put('k', 'v');
      conn.close();
      return [TOKEN];
    }
    case 'ds-coordinator': {
      const ds = await DsService.create('default', null, { coordinator: p.address, node: 'n', metadata });
      const admin = new DsAdmin(p.address, { metadata });
      await admin.status();
      await ds.close();
      admin.close();
      return [TOKEN];
    }
  }
}

describe('secrets never reach the logs', () => {
  it.each(SERVICE_NAMES.map((s) => [s]))(
    '%s at debug level: no capability key, owner secret, password or token in its output',
    async (name) => {
      const dir = tempDir(`secrets-${name}-`);
      const p = await ServiceProcess.start(name, dir.path, {
        BACKPLANE_LOG_LEVEL: 'debug',
        ...(name === 'tuplespace' ? {} : { BACKPLANE_AUTH_TOKEN: TOKEN }),
      });
      try {
        const secrets = await exercise(name, p);
        await new Promise((r) => setTimeout(r, 300));
        const out = p.output();
        expect(out).toMatch(/"level":20/); // calls were logged
        for (const s of [...secrets, TOKEN]) expect([s, out.includes(s)]).toEqual([s, false]);
        // nor the Basic header that carries a password
        expect(out).not.toContain(Buffer.from(`ann:ann-secret-password`).toString('base64'));
      } finally {
        await p.stop();
        dir.remove();
      }
    },
    60_000,
  );
});
