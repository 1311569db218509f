import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { SERVICES } from '../src/services';

const root = join(__dirname, '..', '..', '..');

interface ComposeService {
  command?: string[];
  ports?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  volumes?: string[];
  build?: { dockerfile: string };
}

/** The file as Compose reads it with no variables set: every `${VAR:-default}` is its default. */
function withDefaults(text: string): string {
  return text.replace(/\$\{[A-Z0-9_]+:-([^}]*)\}/g, (_m, d: string) => d);
}

describe('docker-compose.yml', () => {
  const raw = readFileSync(join(root, 'docker-compose.yml'), 'utf8');
  // merge: the services take their build and image from the x-service anchor (<<: *service)
  const compose = parse(withDefaults(raw), { merge: true }) as {
    name?: string;
    services: Record<string, ComposeService & { ulimits?: unknown }>;
  };
  const dockerfile = readFileSync(join(root, 'deploy', 'Dockerfile'), 'utf8');

  it('is read by Compose v2 and 1.29 alike: no top-level name (the project name is in .env), no ulimits', () => {
    expect(compose.name).toBeUndefined();
    expect(readFileSync(join(root, '.env'), 'utf8')).toMatch(/^COMPOSE_PROJECT_NAME=backplane$/m);
    for (const svc of Object.values(compose.services)) expect(svc.ulimits).toBeUndefined();
  });

  it('publishes every port on 127.0.0.1 by default, movable by a variable, and not NATS', () => {
    expect(compose.services.nats?.ports).toBeUndefined();
    for (const [name, svc] of Object.entries(compose.services))
      for (const p of svc.ports ?? [])
        expect([name, p]).toEqual([name, expect.stringMatching(/^127\.0\.0\.1:/)]);
    expect(raw).toContain(
      '${BACKPLANE_BIND:-127.0.0.1}:${BACKPLANE_NAMESERVER_PORT:-7000}:${BACKPLANE_NAMESERVER_PORT:-7000}',
    );
  });
  const serviceDirs = readdirSync(join(root, 'services')).filter((d) =>
    existsSync(join(root, 'services', d, 'package.json')),
  );

  it('lists every service under services/ in the launcher', () => {
    expect(SERVICES.map((s) => s.name).sort()).toEqual([...serviceDirs].sort());
  });

  it('runs nats with JetStream', () => {
    expect(compose.services.nats).toBeDefined();
    expect(readFileSync(join(root, 'deploy', 'nats.conf'), 'utf8')).toContain('jetstream');
  });

  it.each(SERVICES.map((s) => [s.name, s] as const))(
    'runs %s with its port, env, data volume, health check and name server',
    (name, entry) => {
      const svc = compose.services[name];
      expect(svc).toBeDefined();
      if (!svc) return;
      expect(svc.command).toEqual([name]);
      // published under the same number it listens on in the container
      expect(svc.ports).toContain(`127.0.0.1:${entry.port}:${entry.port}`);
      expect(svc.environment?.BACKPLANE_PORT).toBe(String(entry.port));
      expect(svc.environment?.BACKPLANE_ADVERTISE_HOST).toBe(name);
      expect(svc.environment?.BACKPLANE_EXTERNAL_HOST).toBe('127.0.0.1');
      // from the image
      expect(dockerfile).toContain('BACKPLANE_HOST=0.0.0.0');
      expect(dockerfile).toContain('BACKPLANE_DATA_DIR=/data');
      expect(svc.volumes?.some((v) => v.endsWith(':/data'))).toBe(true);
      expect(svc.healthcheck?.test.join(' ')).toContain(`healthcheck ${entry.port}`);
      if (name !== 'name-server') {
        expect(svc.environment?.BACKPLANE_NAMESERVER).toBe('name-server:7000');
        expect(svc.depends_on?.['name-server']?.condition).toBe('service_healthy');
      }
    },
  );

  it("publishes the ds coordinator's data port and its service's client port, reachable from other containers", () => {
    const ds = compose.services['ds-coordinator'];
    expect(ds?.ports).toEqual(['127.0.0.1:7400:7400', '127.0.0.1:7401:7401', '127.0.0.1:7410:7410']);
    expect(ds?.environment?.BACKPLANE_DS_DATA_PORT).toBe('7401');
    expect(ds?.environment?.BACKPLANE_DS_SERVICES).toBe('default=0.0.0.0:7410');
    expect(ds?.environment?.BACKPLANE_ADVERTISE_HOST).toBe('ds-coordinator');
  });

  it('builds every service from the one image whose entrypoint knows them', () => {
    const entrypoint = readFileSync(join(root, 'deploy', 'entrypoint.sh'), 'utf8');
    expect(entrypoint).toContain('/app/node_modules/@backplane/$service/dist/main.js');
    // the runtime stage holds the CLI package and its production dependencies only
    expect(dockerfile).toMatch(/deploy --prod/);
    for (const entry of SERVICES)
      expect(compose.services[entry.name]?.build?.dockerfile).toBe('deploy/Dockerfile');
  });
});
