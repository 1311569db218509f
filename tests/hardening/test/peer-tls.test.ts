import { IbpClient } from '@backplane/ibp-client';
import { NamingClient } from '@backplane/naming-client';
import { clientCredentials } from '@backplane/runtime';
import { makeTestCertificates, tempDir, waitFor } from '@backplane/runtime/testing';
import { ServiceProcess } from '../src/services';

const TOKEN = 'peer-tls-token-0123456789';
const deadline = () => ({ deadline: new Date(Date.now() + 5000) });

/**
 * The calls services make to each other — registering with the name server, asking a parent name server,
 * IBP Copy into another depot — over mutual TLS with the deployment's bearer token, configured with
 * BACKPLANE_CLIENT_TLS_CA/CERT/KEY. Every server here refuses plaintext and calls without the token.
 */
describe('TLS between services', () => {
  const dir = tempDir('peer-tls-');
  const certs = makeTestCertificates(dir.path);
  const server = {
    BACKPLANE_TLS_CERT: certs.serverCert,
    BACKPLANE_TLS_KEY: certs.serverKey,
    BACKPLANE_TLS_CA: certs.ca,
    BACKPLANE_AUTH_TOKEN: TOKEN,
  };
  const client = {
    BACKPLANE_CLIENT_TLS_CA: certs.ca,
    BACKPLANE_CLIENT_TLS_CERT: certs.clientCert,
    BACKPLANE_CLIENT_TLS_KEY: certs.clientKey,
  };
  const creds = () => clientCredentials({ ca: certs.ca, cert: certs.clientCert, key: certs.clientKey });
  const procs: ServiceProcess[] = [];
  const start = async (name: Parameters<typeof ServiceProcess.start>[0], env: Record<string, string>) => {
    const p = await ServiceProcess.start(name, tempDir(`peer-tls-${name}-`).path, env);
    procs.push(p);
    return p;
  };
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    dir.remove();
  });

  it('services register, name servers delegate and depots copy over mutual TLS with the token', async () => {
    const root = await start('name-server', { ...server });
    const child = await start('name-server', {
      ...server,
      ...client,
      BACKPLANE_PARENT_NAMESERVER: root.address,
    });
    const depots = [
      await start('ibp-depot', { ...server, ...client, BACKPLANE_NAMESERVER: root.address }),
      await start('ibp-depot', { ...server, ...client, BACKPLANE_NAMESERVER: '' }),
    ] as const;
    // a depot whose own calls are plaintext cannot register
    const plain = await start('ibp-depot', { ...server, BACKPLANE_NAMESERVER: root.address });

    // registration went to the TLS root; the child finds it through its parent
    const atRoot = new NamingClient({ nameServer: root.address, credentials: creds(), token: TOKEN });
    const atChild = new NamingClient({ nameServer: child.address, credentials: creds(), token: TOKEN });
    const found = await waitFor(async () => (await atRoot.resolve('ibp-depot', {}, deadline())).binding);
    expect(found?.location?.port).toBe(depots[0].port);
    const viaParent = await atChild.resolve('ibp-depot', {}, deadline());
    expect(viaParent.binding?.location?.port).toBe(depots[0].port);
    expect(plain.output()).toMatch(/could not register with the name server/);

    // Copy: depot 0 streams into depot 1 over TLS, showing depot 1 the token
    const ibp = new IbpClient({
      depot: depots[0].address,
      credentials: creds(),
      token: TOKEN,
      tokenDepots: [depots[1].address],
    });
    const data = Buffer.from('copied over mutual TLS '.repeat(1000));
    const source = await ibp.allocate(data.length, { duration: 600 }, depots[0].address);
    const target = await ibp.allocate(data.length, { duration: 600 }, depots[1].address);
    await ibp.store(source.writeCap, data);
    await ibp.copy(source.readCap, target.writeCap);
    expect(Buffer.compare(await ibp.read(target.readCap), data)).toBe(0);

    // the plaintext depot's Copy into depot 1 is refused by depot 1's TLS
    const plainClient = new IbpClient({ depot: plain.address, credentials: creds(), token: TOKEN });
    const src2 = await plainClient.allocate(data.length, { duration: 600 });
    await plainClient.store(src2.writeCap, data);
    await expect(plainClient.copy(src2.readCap, target.writeCap)).rejects.toMatchObject({ code: 14 });
    for (const c of [plainClient, ibp, atRoot, atChild]) c.close();
  }, 120_000);
});
