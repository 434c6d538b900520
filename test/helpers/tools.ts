import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * The Debian package that brings each system tool a test runs. A test that needs one calls requireTool
 * first, so a machine without it fails at once with the tool and the install command, instead of with
 * `spawn X ENOENT` or a timeout a minute later. scripts/setup.sh installs all of them.
 */
export const TOOL_PACKAGES = {
  docker: 'docker.io',
  prometheus: 'prometheus',
  promtool: 'prometheus',
  dockerd: 'docker.io',
  chromium: 'chromium',
  haproxy: 'haproxy',
  'docker-compose': 'docker-compose',
  casync: 'casync',
  zstd: 'zstd',
  restic: 'restic',
  borg: 'borgbackup',
  debootstrap: 'debootstrap',
  'systemd-analyze': 'systemd',
  openssl: 'openssl',
  sqlite3: 'sqlite3',
  busybox: 'busybox-static',
  pg_ctlcluster: 'postgresql',
  ip: 'iproute2',
  tar: 'tar',
} as const;
export type Tool = keyof typeof TOOL_PACKAGES;

export class MissingToolError extends Error {
  constructor(tool: Tool) {
    super(
      `${tool} not found in PATH: install it with \`apt-get install -y ${TOOL_PACKAGES[tool]}\`` +
        ' (or run scripts/setup.sh, which installs everything the tests use)',
    );
    this.name = 'MissingToolError';
  }
}

/** The absolute path of a tool in PATH (where spawn will look for it), or null. */
export function findTool(tool: Tool): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, tool);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return null;
}

/** Throw MissingToolError for the first of these tools not installed; return their paths. */
export function requireTool(...tools: Tool[]): string[] {
  return tools.map((t) => {
    const p = findTool(t);
    if (!p) throw new MissingToolError(t);
    return p;
  });
}
