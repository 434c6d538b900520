import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { brotliCompressSync, constants } from 'node:zlib';
import { describe, expect, it, onTestFinished } from 'vitest';
import { HubClient } from '../../agent/hub-client.js';
import { fetchRelease, type FetchStats } from '../../agent/release/transfer/fetch-loop.js';
import { fetchManifestResumable } from '../../agent/release/manifest-fetch.js';
import { createChunkStore, type ChunkStore } from '../../shared/content/chunk-store.js';
import { generateKey } from '../../shared/trust/keys.js';
import { createLogger } from '../../shared/log.js';
import { MAX_MANIFEST_BYTES, type ReleaseManifest } from '../../shared/protocol/manifest.js';
import { storeLayer, tarOf } from '../helpers/tar.js';
import { tempDir } from '../helpers/tmp.js';
import { encodeDownloadEntry } from '../../shared/protocol/pack.js';
import { encodeSolidRaw, sha256hex } from '../../shared/content/solid.js';

/**
 * The vessel against a hub that misbehaves (a compromised hub or a man in the middle answers its
 * requests): packs that run on past their length, drip, end early, or carry a decompression bomb.
 * ATTACKS.md 1-3, 12, 13, 17.
 */
type Behaviour = (req: IncomingMessage, res: ServerResponse, pack: Buffer, n: number) => void;

function packOf(store: ChunkStore, digests: string[]): Buffer {
  return Buffer.concat(digests.map((d) => encodeDownloadEntry(d, store.get(d))));
}

/**
 * A fake hub serving one release's packs with `behave` deciding how each pack request is answered;
 * `extend` may add entries to a pack as it is created (what it then serves, ranges too).
 */
async function hostileHub(
  shore: ChunkStore,
  behave: Behaviour,
  extend?: (req: IncomingMessage, pack: Buffer) => Buffer,
) {
  const packs = new Map<string, Buffer>();
  const seen: { method: string; range?: string; closedEarly?: boolean }[] = [];
  let n = 0;
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const entry: (typeof seen)[number] = { method: req.method!, range: req.headers.range };
      seen.push(entry);
      res.on('close', () => (entry.closedEarly = !res.writableFinished));
      if (req.method === 'POST') {
        const digests = (JSON.parse(body) as { digests: string[] }).digests;
        const id = (n + 1).toString(16).padStart(32, '0');
        const pack = packOf(shore, digests);
        packs.set(id, extend ? extend(req, pack) : pack);
        if (req.headers.accept !== 'application/vnd.tender.pack') {
          res
            .writeHead(201, { 'content-type': 'application/json' })
            .end(JSON.stringify({ id, length: packs.get(id)!.byteLength, etag: `"${id}"` }));
          return;
        }
        res.setHeader('tender-pack-id', id);
        res.setHeader('tender-pack-length', String(packs.get(id)!.byteLength));
        res.setHeader('etag', `"${id}"`);
        res.statusCode = 201;
        return behave(req, res, packs.get(id)!, n++);
      }
      const pack = packs.get(req.url!.split('/').pop()!)!;
      const m = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? '');
      const start = m ? Number(m[1]) : 0;
      const end = m && m[2] ? Number(m[2]) + 1 : pack.byteLength;
      res.writeHead(m ? 206 : 200, {
        'content-length': String(end - start),
        etag: String(req.headers['if-range'] ?? ''),
      });
      if (n++ === 0) return behave(req, res, pack.subarray(start, end), 0);
      res.end(pack.subarray(start, end));
    });
  });
  server.on('connection', (s) => (sockets.add(s), s.on('close', () => sockets.delete(s))));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onTestFinished(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

function release(shore: ChunkStore): { m: ReleaseManifest; content: string[] } {
  const stored = storeLayer(
    tarOf([
      { name: 'a.bin', data: randomBytes(200_000) },
      { name: 'b.txt', data: Buffer.from('x'.repeat(50_000)) },
    ]),
    shore,
  );
  const m: ReleaseManifest = {
    _type: 'release',
    spec: 1,
    app: 'hostile',
    version: '1',
    sequence: 1,
    createdAt: '2026-11-26T00:00:00Z',
    services: {},
    images: { [`sha256:${'e'.repeat(64)}`]: { refs: [], layers: [stored.layer] } },
  };
  return { m, content: stored.content.map((c) => c[0]) };
}

async function fetchFrom(
  url: string,
  m: ReleaseManifest,
  vessel: ChunkStore,
  extra: { signal?: AbortSignal; dir?: string } = {},
): Promise<FetchStats> {
  return fetchRelease(
    {
      client: new HubClient(url, 'v-1', generateKey().key),
      vesselName: 'ship-h',
      chunks: vessel,
      dir: extra.dir ?? tempDir(),
      log: createLogger('t', 'silent'),
      stall: { ms: 4000, minBytes: 4096 },
      ...extra,
    },
    m,
  );
}

describe('fetching from a hostile hub', () => {
  it('stops reading a pack at its declared length however much more the hub sends', async () => {
    const shore = createChunkStore(tempDir());
    const { m, content } = release(shore);
    const hub = await hostileHub(shore, (_req, res, pack) => {
      res.write(pack);
      // ... and then garbage, forever.
      const t = setInterval(() => res.write(randomBytes(64 * 1024)), 5);
      res.on('close', () => clearInterval(t));
    });
    const vessel = createChunkStore(tempDir());
    const stats = await fetchFrom(hub.url, m, vessel);
    expect(content.every((d) => vessel.has(d))).toBe(true);
    // A few pieces past the end at most, then the connection is dropped by the vessel.
    expect(stats.bytesReceived).toBeLessThan(2_000_000);
    expect(hub.seen.filter((s) => s.method === 'POST').every((s) => s.closedEarly !== false)).toBe(true);
  });

  it('resumes at the byte where a pack ended early', async () => {
    const shore = createChunkStore(tempDir());
    const { m, content } = release(shore);
    const hub = await hostileHub(shore, (_req, res, pack, n) => {
      if (n !== 1) return res.end(pack);
      // The content pack: half of it, then the connection drops.
      res.setHeader('content-length', String(pack.byteLength));
      res.write(pack.subarray(0, 100_000), () => res.destroy());
    });
    const vessel = createChunkStore(tempDir());
    await fetchFrom(hub.url, m, vessel);
    expect(content.every((d) => vessel.has(d))).toBe(true);
    const resumed = hub.seen.find((s) => s.method === 'GET');
    expect(Number(/bytes=(\d+)-/.exec(resumed?.range ?? '')?.[1])).toBeGreaterThanOrEqual(90_000);
  });

  it('drops a connection that drips bytes and fetches again', { timeout: 30_000 }, async () => {
    const shore = createChunkStore(tempDir());
    const { m, content } = release(shore);
    let dripStoppedAt = 0;
    const t0 = Date.now();
    const hub = await hostileHub(shore, (_req, res, pack, n) => {
      if (n !== 1) return res.end(pack);
      res.setHeader('content-length', String(pack.byteLength));
      let i = 0;
      const t = setInterval(() => res.write(pack.subarray(i, ++i)), 200);
      res.on('close', () => {
        clearInterval(t);
        dripStoppedAt = Date.now();
      });
    });
    const vessel = createChunkStore(tempDir());
    await fetchFrom(hub.url, m, vessel);
    expect(content.every((d) => vessel.has(d))).toBe(true);
    // The watchdog (4 s here, 60 s in service) ended the drip, long before it could finish (~20 min).
    expect(dripStoppedAt - t0).toBeLessThan(15_000);
    expect(hub.seen.some((s) => s.method === 'GET')).toBe(true);
  });

  it('refuses a chunk that inflates past its signed size (a bomb) and never stores it', async () => {
    const shore = createChunkStore(tempDir());
    const { m, content } = release(shore);
    const victim = content[0]!;
    // 40 MB of zeros, brotli-packed into 64 bytes, in place of the first content chunk. Small enough to fit
    // any chunk's length bound, so it is the inflate cap that must catch it (at quality 1 it is 7.6 KB, and
    // a pack of the victim alone was sometimes refused by its declared length first).
    const bomb = brotliCompressSync(Buffer.alloc(40 * 1024 * 1024), {
      params: { [constants.BROTLI_PARAM_QUALITY]: 5 },
    });
    expect(bomb.byteLength).toBeLessThan(1000);
    const hub = await hostileHub(shore, (_req, res, pack) => {
      let off = 0;
      const out: Buffer[] = [];
      while (off < pack.byteLength) {
        const d = pack.subarray(off, off + 32).toString('hex');
        const len = pack.readUInt32BE(off + 32);
        const body = d === victim ? bomb : pack.subarray(off + 36, off + 36 + len);
        const h = Buffer.from(pack.subarray(off, off + 36));
        h.writeUInt32BE(body.byteLength, 32);
        out.push(h, body);
        off += 36 + len;
      }
      const swapped = Buffer.concat(out);
      res.setHeader('tender-pack-length', String(swapped.byteLength));
      res.end(swapped);
    });
    const vessel = createChunkStore(tempDir());
    await expect(fetchFrom(hub.url, m, vessel)).rejects.toThrow(/still failing verification after 5 rounds/);
    expect(vessel.has(victim)).toBe(false);
    expect(content.slice(1).every((d) => vessel.has(d))).toBe(true);
  });

  it('takes content sent ahead of its tier only as chunks of the release, each one checked', async () => {
    const shore = createChunkStore(tempDir());
    const { m, content } = release(shore);
    const foreign = randomBytes(5000);
    const groupOf = (members: { digest: string; raw: Buffer }[]) => {
      const raw = encodeSolidRaw(members);
      return encodeDownloadEntry(sha256hex(raw), brotliCompressSync(raw));
    };
    const members = content.map((d) => ({ digest: d, raw: shore.getRaw(d)! }));
    // After the index (the only entry the vessel asked for), a group of `extra` when it asked ahead.
    const hubWith = (extra: Buffer) =>
      hostileHub(
        shore,
        (_req, res, pack) => res.end(pack),
        (req, pack) => (req.headers['tender-pack-ahead'] === 'groups' ? Buffer.concat([pack, extra]) : pack),
      );

    // The release's own content: on board from the one request, nothing asked twice.
    const honest = await hubWith(groupOf(members));
    const a = createChunkStore(tempDir());
    const sa = await fetchFrom(honest.url, m, a);
    expect(content.every((d) => a.has(d))).toBe(true);
    expect(sa.requests).toBe(1);
    expect(sa.chunksRejected).toBe(0);

    // A chunk of no release of it among them: the group is refused whole, nothing of it stored, and the
    // content comes in a pack of its own.
    const forged = await hubWith(groupOf([...members, { digest: sha256hex(foreign), raw: foreign }]));
    const b = createChunkStore(tempDir());
    const sb = await fetchFrom(forged.url, m, b);
    expect(b.has(sha256hex(foreign))).toBe(false);
    expect(sb.chunksRejected).toBe(1);
    expect(content.every((d) => b.has(d))).toBe(true);
    expect(sb.requests).toBe(2);
    expect(forged.seen.filter((r) => r.method === 'POST')).toHaveLength(2);
  });

  it('resumes at its byte a pack with content ahead cut after its index, across a restart', async () => {
    const shore = createChunkStore(tempDir());
    const { m, content } = release(shore);
    const raw = encodeSolidRaw(content.map((d) => ({ digest: d, raw: shore.getRaw(d)! })));
    const group = encodeDownloadEntry(sha256hex(raw), brotliCompressSync(raw));
    let cutAt = 0;
    const hub = await hostileHub(
      shore,
      (_req, res, pack) => {
        // The index and half the group, then nothing: the agent is stopped meanwhile.
        cutAt = pack.byteLength - Math.floor(group.byteLength / 2);
        res.setHeader('content-length', String(pack.byteLength));
        res.write(pack.subarray(0, cutAt));
      },
      (_req, pack) => Buffer.concat([pack, group]),
    );
    const vessel = createChunkStore(tempDir());
    const dir = tempDir();
    const stop = new AbortController();
    const first = fetchFrom(hub.url, m, vessel, { signal: stop.signal, dir });
    for (let i = 0; i < 200 && !hub.seen.some((r) => r.method === 'POST'); i++)
      await new Promise((r) => setTimeout(r, 25));
    // The bytes are on their way; what came is flushed to disk at the stop (under the 4 s stall limit).
    await new Promise((r) => setTimeout(r, 500));
    stop.abort();
    await expect(first).rejects.toThrow();
    const index = Object.values(m.images)[0]!.layers[0]!.index![0];
    expect(vessel.has(index)).toBe(true);
    expect(content.some((d) => vessel.has(d))).toBe(false);
    // The agent again: the same pack, from the byte it had, and nothing left in its folder after.
    await fetchFrom(hub.url, m, vessel, { dir });
    expect(content.every((d) => vessel.has(d))).toBe(true);
    expect(hub.seen.filter((r) => r.method === 'POST')).toHaveLength(1);
    const resumedAt = Number(/bytes=(\d+)-/.exec(hub.seen.find((r) => r.method === 'GET')?.range ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(cutAt);
    expect(readdirSync(dir).filter((f) => f.endsWith('.part') || /^[0-9a-f]{32}\.json$/.test(f))).toEqual([]);
  });

  it('refuses a pack declared longer than its chunks could be, before reading it', async () => {
    const shore = createChunkStore(tempDir());
    const { m } = release(shore);
    const hub = await hostileHub(shore, (_req, res, pack) => {
      res.setHeader('tender-pack-length', String(10 * 2 ** 30));
      res.end(pack);
    });
    await expect(fetchFrom(hub.url, m, createChunkStore(tempDir()))).rejects.toThrow(
      /hub declared a pack of 10737418240 bytes for chunks that fit in \d+/,
    );
  });
});

describe('fetching a manifest from a hostile hub', () => {
  async function endless(declare?: number) {
    let sent = 0;
    const server = createServer((_req, res) => {
      res.writeHead(200, declare ? { 'content-length': String(declare) } : {});
      const t = setInterval(() => {
        res.write(Buffer.alloc(256 * 1024, 0x20));
        sent += 256 * 1024;
      }, 2);
      res.on('close', () => clearInterval(t));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    onTestFinished(() => {
      server.closeAllConnections();
      server.close();
    });
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, sent: () => sent };
  }

  it('refuses a manifest that never ends once it passes the cap, without buffering it', async () => {
    const hub = await endless();
    const client = new HubClient(hub.url, 'v-1', generateKey().key);
    await expect(fetchManifestResumable(client, 'x', { app: 'a', version: '1' }, tempDir())).rejects.toThrow(
      `passed the ${MAX_MANIFEST_BYTES}-byte cap while streaming`,
    );
    expect(hub.sent()).toBeLessThan(MAX_MANIFEST_BYTES + 16 * 1024 * 1024);
  });

  it('refuses a manifest declared larger than the cap before reading it', async () => {
    const hub = await endless(50 * 1024 * 1024);
    const client = new HubClient(hub.url, 'v-1', generateKey().key);
    await expect(fetchManifestResumable(client, 'x', { app: 'a', version: '1' }, tempDir())).rejects.toThrow(
      /is 52428800 bytes, over the 8388608-byte cap/,
    );
  });
});
