import Docker from 'dockerode';
import { describe, expect, it } from 'vitest';

describe('docker engine', () => {
  it('is reachable from the test suite through dockerode (CI started it)', async () => {
    const docker = new Docker({ socketPath: process.env.DOCKER_SOCKET ?? '/var/run/docker.sock' });
    const version = await docker.version();
    expect(version.ApiVersion).toMatch(/^\d+\.\d+$/);
    const containers = await docker.listContainers({ all: true });
    expect(Array.isArray(containers)).toBe(true);
  });
});
