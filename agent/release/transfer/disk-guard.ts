import { statfsSync } from 'node:fs';
import { TenderError } from '../../../shared/errors.js';
import type { ReleaseManifest } from '../../../shared/protocol/manifest.js';

export class DiskGuardError extends TenderError {}

// Free space kept beyond what a release needs, so a download never fills the disk for the apps.
export const DISK_MARGIN_BYTES = 512 * 1024 * 1024;

/** Refuse to start a transfer that would leave less than the margin free. */
export function checkDisk(
  dir: string,
  m: ReleaseManifest,
  downloadBytes: number,
  marginBytes = DISK_MARGIN_BYTES,
): void {
  // An agent executable is written out once beside the chunks, as a layer is loaded into the engine.
  const layerBytes =
    Object.values(m.images).reduce((a, i) => a + i.layers.reduce((b, l) => b + l.size, 0), 0) + (m.binary?.size ?? 0);
  const need = downloadBytes + layerBytes + marginBytes;
  const s = statfsSync(dir);
  const free = s.bavail * s.bsize;
  if (free < need) {
    throw new DiskGuardError(
      `not enough disk for release ${m.version}: needs ${(need / 1e6).toFixed(0)} MB ` +
        `(download, images and a ${(marginBytes / 1e6).toFixed(0)} MB margin), ` +
        `${(free / 1e6).toFixed(0)} MB free`,
    );
  }
}
