import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hostAccessLines, parseCompose } from '../../shared/protocol/release-spec.js';
import type { ReleaseManifest } from '../../shared/protocol/manifest.js';
import { envelopeBytes, signEnvelope } from '../../shared/trust/envelope.js';
import { paths } from '../../shared/protocol/routes.js';
import { startHub, type TestHub } from '../helpers/hub.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const compose = (volumes: string[], hostAccess?: string[]) => `name: sms
services:
  agent:
    image: sms/agent:1.0.0
    volumes: ${JSON.stringify(volumes)}
${hostAccess ? `    x-tender:\n      host-access: ${JSON.stringify(hostAccess)}\n` : ''}  web:
    image: sms/web:1.0.0
volumes:
  data: {}
`;

function publish(hub: TestHub, version: string, sequence: number, volumes: string[], hostAccess?: string[]) {
  const parsed = parseCompose(compose(volumes, hostAccess), 'compose.yml');
  const services = Object.fromEntries(
    Object.entries(parsed.services).map(([n, s]) => [n, { ...s, imageId: `sha256:${'a'.repeat(64)}` }]),
  );
  const m: ReleaseManifest = {
    _type: 'release',
    spec: 1,
    app: 'sms',
    version,
    sequence,
    createdAt: '2026-11-26T00:00:00Z',
    services,
    images: {},
  };
  return hub.publish(envelopeBytes(signEnvelope('release', m, [hub.keys.release[0]!])));
}

describe('what a release may touch on the host is shown with it (ATTACKS.md 42)', () => {
  it('one line per declared bind, by service then path; none for a release that binds nothing', () => {
    const { services } = parseCompose(
      compose(
        ['/var/run/docker.sock:/var/run/docker.sock', '/etc:/host/etc:ro', 'data:/data'],
        ['/var/run/docker.sock', '/etc:ro'],
      ),
      'f.yml',
    );
    expect(hostAccessLines(services)).toEqual(['agent: /etc ro', 'agent: /var/run/docker.sock rw']);
    expect(hostAccessLines(parseCompose(compose(['data:/data']), 'f.yml').services)).toEqual([]);
  });

  it('the hub lists each release with its host access, and tender release list shows it', async () => {
    const hub = await startHub();
    await publish(hub, '1.0.0', 1, ['data:/data']);
    await publish(
      hub,
      '1.0.1',
      2,
      ['/var/run/docker.sock:/var/run/docker.sock', '/:/host:ro'],
      ['/var/run/docker.sock', '/:ro'],
    );
    const res = await hub.app.inject({
      url: paths.releases(),
      headers: { authorization: `Bearer ${hub.token('viewer')}` },
    });
    expect(res.statusCode).toBe(200);
    const byVersion = Object.fromEntries(
      (res.json().releases as { version: string; hostAccess?: string[] }[]).map((r) => [r.version, r.hostAccess]),
    );
    expect(byVersion).toEqual({ '1.0.0': [], '1.0.1': ['agent: / ro', 'agent: /var/run/docker.sock rw'] });
    const url = await hub.listen();
    const env = { TENDER_HUB: url, TENDER_TOKEN: hub.token('viewer'), TENDER_CONFIG: join(tempDir('cli-'), 'none') };
    const out = await runCli(['release', 'list'], env);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/HOST ACCESS/);
    expect(out.stdout).toMatch(/1\.0\.1 .*agent: \/ ro; agent: \/var\/run\/docker\.sock rw/);
    expect(out.stdout).toMatch(/1\.0\.0 .* none/);
  });
});
