import { createHash, randomBytes } from 'node:crypto';
import { brotliCompressSync } from 'node:zlib';
import type { ReleaseManifest } from '../../shared/protocol/manifest.js';
import { MEDIA } from '../../shared/protocol/http.js';
import { encodeUploadPack } from '../../shared/protocol/pack.js';
import { paths } from '../../shared/protocol/routes.js';
import { envelopeBytes, signEnvelope } from '../../shared/trust/envelope.js';
import type { PrivateKey } from '../../shared/trust/keys.js';
import type { TestHub } from './hub.js';

/**
 * A release published and rolled out through the hub's API only (no store calls), so tests of the HTTP
 * edge do not depend on how the hub stores things: `chunks` random chunks as the image config's named
 * chunks (no layer index needed), signed by `key` (the hub's first release key by default).
 */
export async function publishViaApi(
  hub: TestHub,
  opts: { app: string; version: string; sequence: number; target?: string; chunks?: number; key?: PrivateKey },
): Promise<{ digests: string[]; envelope: Buffer }> {
  const op = { authorization: `Bearer ${hub.token('operator')}` };
  const chunks = Array.from({ length: opts.chunks ?? 2 }, () => {
    const raw = randomBytes(20_000 + Math.floor(Math.random() * 5000));
    return {
      digest: createHash('sha256').update(raw).digest('hex'),
      rawSize: raw.byteLength,
      compressed: brotliCompressSync(raw),
    };
  });
  if (chunks.length) {
    const up = await hub.app.inject({
      method: 'POST',
      url: paths.chunks(),
      headers: { ...op, 'content-type': MEDIA.uploadPack },
      payload: encodeUploadPack(chunks),
    });
    if (up.statusCode !== 200) throw new Error(`chunk upload: ${up.statusCode} ${up.body}`);
  }
  const m: ReleaseManifest = {
    _type: 'release',
    spec: 1,
    app: opts.app,
    version: opts.version,
    sequence: opts.sequence,
    createdAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    services: {},
    images: {
      [`sha256:${'c'.repeat(64)}`]: {
        refs: [],
        layers: [],
        config: {
          size: chunks.reduce((a, c) => a + c.rawSize, 0),
          chunks: chunks.map((c) => [c.digest, c.rawSize, c.compressed.byteLength] as [string, number, number]),
        },
      },
    },
  };
  const envelope = envelopeBytes(signEnvelope('release', m, [opts.key ?? hub.keys.release[0]!]));
  const pub = await hub.app.inject({
    method: 'PUT',
    url: paths.releases(),
    headers: { ...op, 'content-type': MEDIA.envelope },
    payload: envelope,
  });
  if (pub.statusCode !== 201) throw new Error(`publish: ${pub.statusCode} ${pub.body}`);
  if (opts.target) {
    const r = await hub.app.inject({
      method: 'POST',
      url: paths.rollouts(),
      headers: op,
      payload: { release: `${opts.app}@${opts.version}`, target: opts.target },
    });
    if (r.statusCode !== 201) throw new Error(`rollout: ${r.statusCode} ${r.body}`);
  }
  return { digests: chunks.map((c) => c.digest), envelope };
}
