import { describe, expect, it } from 'vitest';
import { parseCompose } from '../../shared/protocol/release-spec.js';
import { verifyManifest, type ReleaseManifest } from '../../shared/protocol/manifest.js';
import { envelopeBytes, signEnvelope } from '../../shared/trust/envelope.js';
import { verifyInitialRoot } from '../../shared/trust/root.js';
import { makeKeys, rootPayloadFor, signedRoot } from '../helpers/keys.js';

const compose = (volumes: string[], hostAccess?: string[], extra = '') => `name: sms
services:
  agent:
    image: sms/agent:1.0.0
    volumes: ${JSON.stringify(volumes)}
${extra}${hostAccess ? `    x-tender:\n      host-access: ${JSON.stringify(hostAccess)}\n` : ''}volumes:
  data: {}
`;

describe('host access at publish (ATTACKS.md 42)', () => {
  it.each([
    ['/:/host', /binds host path \/ read-write without declaring it/],
    ['/:/host:ro', /binds host path \/ read-only without declaring it/],
    ['/etc:/host-etc', /binds host path \/etc read-write/],
    ['/etc:/host-etc:rw', /binds host path \/etc read-write/],
    ['/var/run/docker.sock:/var/run/docker.sock', /host path \/var\/run\/docker.sock/],
    ['/run/docker.sock:/var/run/docker.sock', /host path \/run\/docker.sock/],
    ['/proc:/host-proc:ro', /host path \/proc/],
    ['/srv/data:/data', /host path \/srv\/data/],
  ])('refuses an undeclared bind %s', (v, why) => {
    expect(() => parseCompose(compose([v]), 'f.yml')).toThrow(why);
  });

  it('refuses binds written so that they could pass for another path', () => {
    expect(() => parseCompose(compose(['/srv/../etc:/x'], ['/srv/../etc']), 'f.yml')).toThrow(
      /not a normalised absolute path \(write it as \/etc\)/,
    );
    expect(() => parseCompose(compose(['/etc/:/x'], ['/etc/']), 'f.yml')).toThrow(/not a normalised/);
    expect(() => parseCompose(compose(['//etc:/x'], ['//etc']), 'f.yml')).toThrow(/not a normalised/);
    // A relative source is a named volume, and must be one that is declared.
    expect(() => parseCompose(compose(['./etc:/x']), 'f.yml')).toThrow(/volume \.\/etc is not declared/);
  });

  it('refuses host namespaces, devices and capabilities outright (not in the compose subset)', () => {
    for (const key of [
      'privileged: true',
      'network_mode: host',
      'pid: host',
      'ipc: host',
      'cap_add: [SYS_ADMIN]',
      'devices: ["/dev/sda:/dev/sda"]',
      'security_opt: ["apparmor:unconfined"]',
      'userns_mode: host',
    ]) {
      expect(() => parseCompose(compose(['data:/data'], undefined, `    ${key}\n`), 'f.yml'), key).toThrow(
        /unsupported key/,
      );
    }
  });

  it('accepts declared host access and carries it in the service spec; none means no field', () => {
    const c = parseCompose(
      compose(
        ['/var/run/docker.sock:/var/run/docker.sock', '/etc:/host-etc:ro', 'data:/data'],
        ['/var/run/docker.sock', '/etc:ro'],
      ),
      'f.yml',
    );
    expect(c.services.agent!.hostAccess).toEqual([
      { path: '/var/run/docker.sock', readOnly: false },
      { path: '/etc', readOnly: true },
    ]);
    expect(parseCompose(compose(['data:/data']), 'f.yml').services.agent).not.toHaveProperty('hostAccess');
  });

  it('refuses a read-write bind of a path declared read-only, an unused or a doubled declaration', () => {
    expect(() => parseCompose(compose(['/etc:/x'], ['/etc:ro']), 'f.yml')).toThrow(/read-write but .* read-only/);
    expect(() => parseCompose(compose(['data:/data'], ['/etc']), 'f.yml')).toThrow(/declares \/etc but no volume/);
    expect(() => parseCompose(compose(['/etc:/x'], ['/etc', '/etc:ro']), 'f.yml')).toThrow(/declared twice/);
    expect(() => parseCompose(compose(['/etc:/x'], ['etc']), 'f.yml')).toThrow(/must be "\/HOST\/PATH/);
  });

  it('refuses a signed manifest whose services bind host paths it does not declare (hub and vessel)', () => {
    const keys = makeKeys(1, 1);
    const root = verifyInitialRoot(signedRoot(rootPayloadFor(1, keys), keys.root));
    const spec = parseCompose(compose(['data:/data']), 'f.yml').services.agent!;
    const manifest = (volumes: typeof spec.volumes, hostAccess?: typeof spec.hostAccess): ReleaseManifest => ({
      _type: 'release',
      spec: 1,
      app: 'sms',
      version: '1.0.0',
      sequence: 1,
      createdAt: '2026-11-26T00:00:00Z',
      services: {
        agent: { ...spec, imageId: `sha256:${'a'.repeat(64)}`, volumes, ...(hostAccess ? { hostAccess } : {}) },
      },
      images: {},
    });
    const sign = (m: ReleaseManifest) => envelopeBytes(signEnvelope('release', m, [keys.release[0]!]));
    const sock = {
      source: '/var/run/docker.sock',
      target: '/var/run/docker.sock',
      readOnly: false,
      kind: 'bind',
    } as const;
    expect(() => verifyManifest(root, sign(manifest([sock])))).toThrow(
      /service agent binds host path \/var\/run\/docker.sock read-write without declaring it/,
    );
    expect(() =>
      verifyManifest(root, sign(manifest([sock], [{ path: '/var/run/docker.sock', readOnly: true }]))),
    ).toThrow(/read-write but/);
    expect(verifyManifest(root, sign(manifest([sock], [{ path: '/var/run/docker.sock', readOnly: false }]))).app).toBe(
      'sms',
    );
  });
});
