import { describe, expect, it } from 'vitest';
import { parseCompose, startOrder } from '../../shared/protocol/release-spec.js';

const base = `name: sms
services:
  portal:
    image: sms/portal:1.2.0
    ports: ["8080:80"]
    environment: { MODE: prod, WORKERS: 4 }
    x-tender:
      health: { http: /health, timeout: 30s }
  db:
    image: postgres:16.4
    volumes: ["pgdata:/var/lib/postgresql/data"]
    x-tender:
      health: { tcp: 5432 }
volumes:
  pgdata: {}
`;

describe('release spec (compose subset)', () => {
  it('normalises services, strategies and gates', () => {
    const c = parseCompose(base, 'f.yml');
    expect(c.app).toBe('sms');
    expect(c.services.portal).toMatchObject({
      strategy: 'blue-green',
      ports: [{ published: 8080, target: 80 }],
      environment: { MODE: 'prod', WORKERS: '4' },
      gate: { type: 'http', path: '/health', port: 80, timeoutMs: 30_000 },
    });
    expect(c.services.db).toMatchObject({ strategy: 'recreate', gate: { type: 'tcp', port: 5432 } });
  });

  it('names an unsupported key and where it is', () => {
    expect(() =>
      parseCompose(base.replace('    image: postgres:16.4', '    image: postgres:16.4\n    privileged: true'), 'f.yml'),
    ).toThrow('f.yml: services.db: unsupported key "privileged"');
    expect(() => parseCompose(`${base}networks: {}\n`, 'f.yml')).toThrow(
      'f.yml: (top level): unsupported key "networks"',
    );
  });

  it('refuses :latest and untagged images without a digest', () => {
    expect(() => parseCompose(base.replace('sms/portal:1.2.0', 'sms/portal:latest'), 'f.yml')).toThrow(
      /services.portal.image: image sms\/portal:latest uses :latest without a digest/,
    );
    expect(() => parseCompose(base.replace('sms/portal:1.2.0', 'sms/portal'), 'f.yml')).toThrow(/has no tag/);
    expect(parseCompose(base.replace('sms/portal:1.2.0', `sms/portal@sha256:${'b'.repeat(64)}`), 'f.yml').app).toBe(
      'sms',
    );
  });

  it('refuses two services on one public port', () => {
    const twice = base.replace('    volumes: ["pgdata:/var/lib/postgresql/data"]', '    ports: ["8080:5432"]');
    expect(() => parseCompose(twice, 'f.yml')).toThrow(
      /services.db.ports: public port 8080 is already used by service portal/,
    );
  });

  it('refuses depends_on cycles and unknown services', () => {
    const cyc = base
      .replace('    ports: ["8080:80"]', '    ports: ["8080:80"]\n    depends_on: [db]')
      .replace('    image: postgres:16.4', '    image: postgres:16.4\n    depends_on: [portal]');
    expect(() => parseCompose(cyc, 'f.yml')).toThrow(/depends_on cycle/);
    expect(() =>
      parseCompose(base.replace('    ports: ["8080:80"]', '    ports: ["8080:80"]\n    depends_on: [cache]'), 'f.yml'),
    ).toThrow(/no service named cache/);
  });

  it('refuses duplicate YAML keys and undeclared volumes', () => {
    expect(() => parseCompose(base.replace('name: sms', 'name: sms\nname: other'), 'f.yml')).toThrow(/not valid YAML/);
    expect(() => parseCompose(base.replace('volumes:\n  pgdata: {}\n', ''), 'f.yml')).toThrow(
      /volume pgdata is not declared/,
    );
  });

  it('orders services with dependencies first', () => {
    expect(startOrder({ web: { dependsOn: ['api'] }, api: { dependsOn: ['db'] }, db: { dependsOn: [] } })).toEqual([
      'db',
      'api',
      'web',
    ]);
  });
});
