import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { makeTestCertificates, tempDir } from '@backplane/runtime/testing';
import { status } from '@grpc/grpc-js';
import { SERVICE_NAMES, type ServiceName, ServiceProcess, TS_ADMIN } from '../src/services';

const BIN = join(require.resolve('@backplane/cli/package.json'), '..', 'dist', 'bin.js');

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      // a process killed by a signal (or the timeout) has no exit code: -1, never a code a test expects
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

/** One CLI command per service that needs a working connection, and what its output shows. */
const COMMANDS: Record<ServiceName, { args: (address: string, port: number) => string[]; shows: RegExp }> = {
  'name-server': {
    args: (a) => [
      'names',
      'bind',
      `tls/demo-${Math.random().toString(36).slice(2)}`,
      '127.0.0.1:9',
      '--ns',
      a,
    ],
    shows: /owner secret/i,
  },
  'ibp-depot': { args: (a) => ['ibp', 'status', '--depot', a], shows: /stable/i },
  tuplespace: {
    args: (a) => ['ts', 'spaces', '--server', a, '--user', TS_ADMIN.user, '--password', TS_ADMIN.password],
    shows: /default/,
  },
  sharing: { args: (a) => ['kv', 'put', 'tls/key', 'value', '--server', a], shows: /\d/ },
  'ds-coordinator': { args: (a) => ['ds', 'nodes', '--coordinator', a], shows: /node|no nodes/i },
};

describe('TLS for every service and the CLI', () => {
  const dir = tempDir('tls-');
  const certs = makeTestCertificates(dir.path);
  afterAll(() => dir.remove());

  it.each(SERVICE_NAMES.map((s) => [s]))(
    '%s serves TLS (and mutual TLS) to the CLI and refuses plaintext',
    async (name) => {
      const data = tempDir(`tls-${name}-`);
      const tls = await ServiceProcess.start(name, data.path, {
        BACKPLANE_TLS_CERT: certs.serverCert,
        BACKPLANE_TLS_KEY: certs.serverKey,
      });
      try {
        const { args, shows } = COMMANDS[name];
        const ok = await cli([...args(tls.address, tls.port), '--tls-ca', certs.ca]);
        expect([ok.code, ok.stderr]).toEqual([0, '']);
        expect(ok.stdout).toMatch(shows);
        // a plaintext client cannot connect: UNAVAILABLE, exit 10 + 14, said plainly (no crash, no stack)
        const plain = await cli(args(tls.address, tls.port));
        expect(plain.code).toBe(10 + status.UNAVAILABLE);
        expect(plain.stderr).toMatch(/UNAVAILABLE/);
        expect(plain.stderr).not.toMatch(/\n\s+at /);
      } finally {
        await tls.stop();
      }
      // mutual TLS: the CA is configured on the server, so a client must present a certificate
      const mtls = await ServiceProcess.start(name, data.path, {
        BACKPLANE_TLS_CERT: certs.serverCert,
        BACKPLANE_TLS_KEY: certs.serverKey,
        BACKPLANE_TLS_CA: certs.ca,
      });
      try {
        const { args } = COMMANDS[name];
        const withCert = await cli([
          ...args(mtls.address, mtls.port),
          '--tls-ca',
          certs.ca,
          '--tls-cert',
          certs.clientCert,
          '--tls-key',
          certs.clientKey,
        ]);
        expect([withCert.code, withCert.stderr]).toEqual([0, '']);
        // without a client certificate the handshake fails: UNAVAILABLE too
        const without = await cli([...args(mtls.address, mtls.port), '--tls-ca', certs.ca]);
        expect(without.code).toBe(10 + status.UNAVAILABLE);
        expect(without.stderr).toMatch(/UNAVAILABLE/);
      } finally {
        await mtls.stop();
        data.remove();
      }
    },
    90_000,
  );
});
