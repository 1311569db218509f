import { join } from 'node:path';
import { DsAdmin, DsService } from '@backplane/ds-client';
import {
  freePort,
  type SpawnedProcess,
  spawnProcess,
  startServiceBinary,
  tempDir,
  waitFor,
} from '@backplane/runtime/testing';
import { connectClient, readBytes, write } from './helpers';

const MAIN = join(__dirname, '..', 'dist', 'main.js');
const FIXTURES = join(__dirname, 'fixtures');

describe('ds-coordinator processes', () => {
  it('runs the Appendix A donator and receiver as processes; re-homes the clients of a killed node; keeps bindings across a coordinator kill -9', async () => {
    const dir = tempDir();
    const [servicePort, dataPort, port] = [await freePort(), await freePort(), await freePort()];
    const env = {
      BACKPLANE_NAMESERVER: '',
      BACKPLANE_DS_SERVICES: `default=127.0.0.1:${servicePort}`,
      BACKPLANE_DS_DATA_PORT: String(dataPort),
      BACKPLANE_DS_BINDING_WAIT_MS: '3000',
    };
    const start = () =>
      startServiceBinary(MAIN, { dataDir: dir.path, port, env, ready: /ds coordinator ready/ });
    let coordinator = await start();
    const serviceAddress = `127.0.0.1:${servicePort}`;
    const procs: SpawnedProcess[] = [];
    const node = async (script: string, id: string, ready: RegExp) => {
      const p = spawnProcess(process.execPath, [join(FIXTURES, script), coordinator.address, id], {});
      procs.push(p);
      await p.waitForOutput(ready);
      return p;
    };
    let local: DsService | undefined;
    try {
      const donator = await node('handoff-donator.js', 'donator', /donator ready/);

      // alone, the donator cannot hand off: the seed's example closes the stream
      let sock = await connectClient(serviceAddress, '127.0.0.2');
      await write(sock, 'first\n');
      expect((await readBytes(sock, 18)).toString()).toBe('donator got first\n');
      await donator.waitForOutput(/Handoff failed: No possible targets/);
      await new Promise((r) => sock.once('end', r));
      sock.destroy();

      // with a receiver attached, the client (bound to the donator) is greeted there, then handed off
      const receiver = await node('handoff-receiver.js', 'receiver', /receiver ready/);
      sock = await connectClient(serviceAddress, '127.0.0.2');
      await write(sock, 'second\nhello after the greeting');
      expect((await readBytes(sock, 19)).toString()).toBe('donator got second\n');
      await donator.waitForOutput(
        /Client ipv6:\/\/\[::ffff:127\.0\.0\.2\] handed off to ds:\/\/receiver\/default/,
      );
      await receiver.waitForOutput(/received ipv6:\/\/\[::ffff:127\.0\.0\.2\] with message: greeted second/);
      // the bytes the donator never read went on to the receiver, on the same socket
      expect((await readBytes(sock, 24)).toString()).toBe('HELLO AFTER THE GREETING');
      await write(sock, 'ping');
      expect((await readBytes(sock, 4)).toString()).toBe('PING');

      // the receiver dies: its client is handed to another node, with a message saying why
      local = await DsService.create('default', null, { coordinator: coordinator.address, node: 'local' });
      await receiver.kill();
      const rehomed = await local.receiveHandoff(10_000);
      expect(rehomed.arrival).toEqual({ reason: 'node-failed', from: 'ds://receiver/default' });
      expect(rehomed.getMessage()?.toString()).toMatch(/ds:\/\/receiver\/default failed/);
      const [s] = rehomed.getStreams();
      if (!s) throw new Error('no stream');
      await write(sock, 'still here');
      expect((await readBytes(s, 10)).toString()).toBe('still here');
      await write(s, 'yes');
      expect((await readBytes(sock, 3)).toString()).toBe('yes');
      sock.destroy();

      // the coordinator is killed and restarted: nodes attach again by themselves, bindings are kept
      const detached = new Promise((r) => local?.once('detached', r));
      await coordinator.proc.kill();
      await detached;
      // serve() waits through the re-attach (it used to fail at once while the node had no session)
      const pending = local.serve(20_000);
      coordinator = await start();
      const admin = new DsAdmin(coordinator.address);
      await waitFor(async () => (await admin.status()).nodes.length === 2, 15_000);
      const clients = await admin.clients();
      admin.close();
      expect(clients).toEqual([
        {
          clientUrl: 'ipv6://[::ffff:127.0.0.2]',
          name: 'default',
          nodeUrl: 'ds://local/default',
          streams: 0,
        },
      ]);
      sock = await connectClient(serviceAddress, '127.0.0.2');
      const again = await pending;
      await write(sock, 'back');
      expect((await readBytes(again, 4)).toString()).toBe('back');
      sock.destroy();
    } finally {
      await local?.close();
      for (const p of procs) await p.stop('SIGTERM');
      await coordinator.proc.stop('SIGTERM');
      dir.remove();
    }
  }, 90_000);

  it('stops cleanly on SIGTERM, closing client connections', async () => {
    const dir = tempDir();
    const [servicePort, dataPort] = [await freePort(), await freePort()];
    const coordinator = await startServiceBinary(MAIN, {
      dataDir: dir.path,
      env: {
        BACKPLANE_NAMESERVER: '',
        BACKPLANE_DS_SERVICES: `default=127.0.0.1:${servicePort}`,
        BACKPLANE_DS_DATA_PORT: String(dataPort),
      },
      ready: /ds coordinator ready/,
    });
    const ds = await DsService.create('default', null, {
      coordinator: coordinator.address,
      node: 'n',
      reattach: false,
    });
    const sock = await connectClient(`127.0.0.1:${servicePort}`, '127.0.0.3');
    await ds.serve(5000);
    const closed = new Promise((r) => sock.once('end', r));
    sock.resume();
    expect(await coordinator.proc.stop('SIGTERM')).toBe(0);
    await closed;
    sock.destroy();
    await ds.close();
    dir.remove();
  }, 30_000);
});
