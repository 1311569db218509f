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

describe('docker-compose.yml', () => {
  // merge: the services take their build and image from the x-service anchor (<<: *service)
  const compose = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
    services: Record<string, ComposeService>;
  };
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
      expect(svc.ports).toContain(`${entry.port}:${entry.port}`);
      expect(svc.environment?.BACKPLANE_PORT).toBe(String(entry.port));
      expect(svc.environment?.BACKPLANE_HOST).toBe('0.0.0.0');
      expect(svc.environment?.BACKPLANE_DATA_DIR).toBe('/data');
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
    expect(ds?.ports).toEqual(expect.arrayContaining(['7400:7400', '7401:7401', '7410:7410']));
    expect(ds?.environment?.BACKPLANE_DS_DATA_PORT).toBe('7401');
    expect(ds?.environment?.BACKPLANE_DS_SERVICES).toBe('default=0.0.0.0:7410');
    expect(ds?.environment?.BACKPLANE_ADVERTISE_HOST).toBe('ds-coordinator');
  });

  it('builds every service from the one image whose entrypoint knows them', () => {
    const entrypoint = readFileSync(join(root, 'deploy', 'entrypoint.sh'), 'utf8');
    expect(entrypoint).toContain('/app/services/$service/dist/main.js');
    for (const entry of SERVICES)
      expect(compose.services[entry.name]?.build?.dockerfile).toBe('deploy/Dockerfile');
  });
});
