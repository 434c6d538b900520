import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { brotliDecompressSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { HubClient } from '../../agent/hub-client.js';
import { fetchRelease, newFetchStats, type FetchStats } from '../../agent/release/transfer/fetch-loop.js';
import type { TransferCounts } from '../../agent/release/transfer/progress.js';
import { PackSink } from '../../agent/release/transfer/pack-sink.js';
import { packPartPath, savePackState } from '../../agent/release/transfer/pack-state.js';
import { createChunkStore, type ChunkStore } from '../../shared/content/chunk-store.js';
import { allReleaseChunks, loadLayerIndex } from '../../shared/content/release-chunks.js';
import { joinTar } from '../../shared/content/tar-split.js';
import { createLogger } from '../../shared/log.js';
import { envelopeBytes, signEnvelope } from '../../shared/trust/envelope.js';
import type { ReleaseManifest } from '../../shared/protocol/manifest.js';
import { decodeDownloadEntries, DOWNLOAD_ENTRY_HEADER_BYTES } from '../../shared/protocol/pack.js';
import { paths } from '../../shared/protocol/routes.js';
import { enrolVessel, startHub, type TestHub, type TestVessel } from '../helpers/hub.js';
import { storeLayer, tarOf, type TarEntrySpec } from '../helpers/tar.js';
import { tempDir } from '../helpers/tmp.js';
import { LinkSim } from '../link-sim.js';

/**
 * Packs with solid groups (the chunks a release adds, compressed as one stream per few MB) and layer
 * index deltas, end to end through a real hub over HTTP: a vessel holding the previous release, one that
 * skipped two, and one holding nothing all end up with every layer byte for byte; a pack cut at any byte
 * resumes into the same chunks.
 */
const log = createLogger('t', 'silent');
// Seeded, so the text (and how well it compresses: the assertions on pack sizes) is the same every run.
let seed = 0x2f6b1d3;
const next = () => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
};
const WORDS = Array.from({ length: 400 }, () =>
  Array.from({ length: 3 + (next() % 6) }, () => (next() % 256).toString(16).padStart(2, '0')).join(''),
);

/** Text that compresses well, and better across chunks than within one (the words repeat everywhere). */
function prose(bytes: number): Buffer {
  const out: string[] = [];
  let n = 0;
  while (n < bytes) {
    const w = WORDS[next() % WORDS.length]!;
    out.push(w);
    n += w.length + 1;
  }
  return Buffer.from(out.join(' ').slice(0, bytes));
}

const base = tarOf([{ name: 'base.bin', data: randomBytes(30_000) }]);
const appFiles = Array.from({ length: 40 }, (_, i) => ({ name: `app/f${i}.txt`, data: prose(1500) }));

/** Release k: the same base layer, the app layer with one file edited and other modes (new headers), a
 * layer of new content of its own. */
function releaseLayers(k: number): Buffer[] {
  const app: TarEntrySpec[] = appFiles.map((f, i) => ({
    ...f,
    mode: k % 2 ? 0o644 : 0o640,
    data: i === k ? Buffer.concat([f.data, Buffer.from(`edited in ${k}\n`)]) : f.data,
  }));
  const extra = tarOf([
    { name: `extra${k}/a.txt`, data: prose(70_000) },
    { name: `extra${k}/b.txt`, data: prose(50_000) },
  ]);
  return [base, tarOf(app), extra];
}

async function publish(hub: TestHub, k: number, tars = releaseLayers(k)): Promise<ReleaseManifest> {
  const layers = tars.map((t) => storeLayer(t, hub.chunkFiles).layer);
  const m: ReleaseManifest = {
    _type: 'release',
    spec: 1,
    app: 'solid',
    version: String(k),
    sequence: k,
    createdAt: '2026-12-02T00:00:00Z',
    services: {},
    images: { [`sha256:${String(k).repeat(64)}`]: { refs: ['ship/app:v'], layers } },
  };
  const r = await hub.publish(envelopeBytes(signEnvelope('release', m, [hub.keys.release[0]!])));
  await hub.rollout(r, 'all');
  return m;
}

/** Every layer of the release rebuilt from the store matches its diff ID. */
function expectImages(m: ReleaseManifest, store: ChunkStore): void {
  for (const img of Object.values(m.images))
    for (const l of img.layers) {
      const ix = loadLayerIndex(store, l.index!);
      const h = createHash('sha256');
      for (const piece of joinTar(
        ix.meta,
        ix.chunks.map(([d]) => store.getRaw(d)!),
      ))
        h.update(piece);
      expect(`sha256:${h.digest('hex')}`).toBe(l.diffId);
    }
}

async function fetchOn(hub: TestHub, url: string, v: TestVessel, store: ChunkStore, dir: string, m: ReleaseManifest) {
  const stats: FetchStats = newFetchStats();
  const missingRaw = store.missing(allReleaseChunks(m, hub.chunkFiles).keys()).length;
  const reports: TransferCounts[] = [];
  await fetchRelease(
    {
      client: new HubClient(url, v.id, v.key),
      vesselName: v.name,
      chunks: store,
      dir,
      log,
      onProgress: (c) => reports.push(c),
    },
    m,
    stats,
  );
  // Progress ends at its total, solid groups and deltas counted as the chunks they stand for.
  const last = reports[reports.length - 1]!;
  expect(reports[0]!.done).toBe(0);
  expect(last.done).toBe(last.total);
  expect(last.total > 0).toBe(missingRaw > 0);
  return stats;
}

/** What the chunks the store lacks would cost sent one by one (the fallback). */
function perChunkBytes(hub: TestHub, m: ReleaseManifest, store: ChunkStore): number {
  const all = allReleaseChunks(m, hub.chunkFiles);
  return store.missing(all.keys()).reduce((a, d) => a + DOWNLOAD_ENTRY_HEADER_BYTES + hub.chunkFiles.size(d), 0);
}

describe('solid packs and index deltas', () => {
  it('brings the right images to a vessel holding the previous release, one two behind, one with nothing', async () => {
    const hub = await startHub({ limits: { SOLID_BROTLI_QUALITY: 5 } });
    const url = await hub.listen();
    const [a, b, c] = [
      await enrolVessel(hub, 'ship-a'),
      await enrolVessel(hub, 'ship-b'),
      await enrolVessel(hub, 'ship-c'),
    ];
    const ms = [];
    for (let k = 1; k <= 4; k++) ms.push(await publish(hub, k));
    const [m1, m2, m3, m4] = ms as [ReleaseManifest, ReleaseManifest, ReleaseManifest, ReleaseManifest];

    // Holds nothing: per-chunk entries (no release before it is held), every layer right.
    const aStore = createChunkStore(tempDir());
    const aDir = tempDir();
    await fetchOn(hub, url, a, aStore, aDir, m1);
    expectImages(m1, aStore);

    // Holds m1 and m2: m3 comes in solid groups and index deltas, well under the per-chunk cost.
    await fetchOn(hub, url, a, aStore, aDir, m2);
    expectImages(m2, aStore);
    const oneByOne = perChunkBytes(hub, m3, aStore);
    const s3 = await fetchOn(hub, url, a, aStore, aDir, m3);
    expectImages(m3, aStore);
    expect(s3.chunksRejected).toBe(0);
    expect(s3.bytesReceived).toBeLessThan(oneByOne * 0.8);
    // One round trip: the groups came after the indexes, in the same pack, none of them held already.
    expect(s3.requests).toBe(1);
    expect(s3.chunksHeld).toBe(0);

    // Holds m1 only, skips m2 and m3: m4's groups against m2 serve it, the rest comes chunk by chunk.
    const bStore = createChunkStore(tempDir());
    const bDir = tempDir();
    await fetchOn(hub, url, b, bStore, bDir, m1);
    const s4 = await fetchOn(hub, url, b, bStore, bDir, m4);
    expectImages(m4, bStore);
    expect(s4.chunksRejected).toBe(0);
    // m4's groups (against m3 and m2) that hold nothing b has came ahead with the indexes; whatever else
    // b lacked, in a second pack. Nothing came that b held.
    expect(s4.requests).toBeLessThanOrEqual(2);
    expect(s4.chunksHeld).toBe(0);

    // Holds nothing at all and asks for the newest: right too.
    const cStore = createChunkStore(tempDir());
    const s4c = await fetchOn(hub, url, c, cStore, tempDir(), m4);
    expectImages(m4, cStore);
    expect(s4c.chunksHeld).toBe(0);
  }, 120_000);

  it('sends ahead with the indexes only the groups of content the vessel lacks, judged by what it holds', async () => {
    const hub = await startHub({ limits: { SOLID_BROTLI_QUALITY: 5 } });
    const url = await hub.listen();
    // Release 2 adds a layer x; release 3 keeps it and adds y. Release 3's plan: y against 2, x against 1.
    const x = tarOf([{ name: 'x/lib.txt', data: prose(90_000) }]);
    const y = tarOf([{ name: 'y/lib.txt', data: prose(80_000) }]);
    const vessels = [await enrolVessel(hub, 'ship-x2'), await enrolVessel(hub, 'ship-x1')];
    const m1 = await publish(hub, 1, [base]);
    const m2 = await publish(hub, 2, [base, x]);
    const m3 = await publish(hub, 3, [base, x, y]);
    const holding = async (name: string, ms: ReleaseManifest[]) => {
      const v = vessels.find((w) => w.name === name)!;
      const store = createChunkStore(tempDir());
      const dir = tempDir();
      for (const m of ms) await fetchOn(hub, url, v, store, dir, m);
      return { v, store, dir };
    };
    // Holding 2: y comes ahead, x (held) does not come at all.
    const a = await holding('ship-x2', [m1, m2]);
    const sa = await fetchOn(hub, url, a.v, a.store, a.dir, m3);
    expectImages(m3, a.store);
    expect([sa.requests, sa.chunksHeld, sa.chunksRejected]).toEqual([1, 0, 0]);
    // Holding 1 only: both groups, still one round trip.
    const b = await holding('ship-x1', [m1]);
    const sb = await fetchOn(hub, url, b.v, b.store, b.dir, m3);
    expectImages(m3, b.store);
    expect([sb.requests, sb.chunksHeld, sb.chunksRejected]).toEqual([1, 0, 0]);
    // ... and x came too: b lacked it.
    expect(sb.bytesReceived).toBeGreaterThan(sa.bytesReceived * 1.5);
  }, 120_000);

  it('resumes a pack of solid groups and deltas cut at any byte into the same chunks', async () => {
    const hub = await startHub({ limits: { SOLID_BROTLI_QUALITY: 5 } });
    const url = await hub.listen();
    const v = await enrolVessel(hub, 'ship-r');
    const w = await enrolVessel(hub, 'ship-w');
    const m1 = await publish(hub, 1);
    const m2 = await publish(hub, 2);
    const held = createChunkStore(tempDir());
    const dir = tempDir();
    await fetchOn(hub, url, v, held, dir, m1);
    // The pack a vessel holding m1 gets for m2's content, straight from the hub.
    const sizes = allReleaseChunks(m2, hub.chunkFiles);
    const wanted = held.missing(sizes.keys());
    const path = paths.vesselPacks(v.name);
    const s = v.sign('POST', path, { release: 'solid@2', digests: wanted });
    const r = await hub.app.inject({
      method: 'POST',
      url: path,
      headers: { ...s.headers, accept: 'application/vnd.tender.pack' },
      payload: s.payload,
    });
    expect(r.statusCode, r.body).toBe(201);
    const pack = r.rawPayload;
    const oneByOne = wanted.reduce((a, d) => a + DOWNLOAD_ENTRY_HEADER_BYTES + hub.chunkFiles.size(d), 0);
    expect(pack.byteLength).toBeLessThan(oneByOne * 0.8);
    const id = String(r.headers['tender-pack-id']);
    // Cuts at every byte of the first entry's header, inside the compressed groups, and near the end.
    const cuts = [
      ...Array.from({ length: 40 }, (_, i) => i),
      ...Array.from({ length: 25 }, (_, i) => Math.floor(((i + 1) * pack.byteLength) / 26)),
      pack.byteLength - 1,
    ];
    for (const cut of cuts) {
      const store = createChunkStore(tempDir());
      const sdir = tempDir();
      const state = savePackState(sdir, 'solid@2', { id, length: pack.byteLength, etag: `"${id}"` }, wanted);
      writeFileSync(packPartPath(sdir, id), pack.subarray(0, cut));
      const counters = { bytesReceived: 0, chunksStored: 0, chunksRejected: 0, bytesStored: 0, chunksHeld: 0 };
      const sink = new PackSink({ dir: sdir, chunks: store, log }, state, sizes, counters);
      // The rest arrives in odd pieces after the restart.
      for (let off = cut; off < pack.byteLength; off += 65_537) sink.write(pack.subarray(off, off + 65_537));
      sink.flush();
      expect(store.missing(wanted), `cut at ${cut}`).toEqual([]);
      expect(counters.chunksRejected).toBe(0);
    }
    // And through a link that cuts every few KB, at whatever byte that falls on.
    const link = new LinkSim({ host: '127.0.0.1', port: Number(new URL(url).port) }, { cutAfterBytes: 15_001 });
    const linkPort = await link.start();
    const wStore = createChunkStore(tempDir());
    const wDir = tempDir();
    await fetchOn(hub, url, w, wStore, wDir, m1);
    const st = await fetchOn(hub, `http://127.0.0.1:${linkPort}`, w, wStore, wDir, m2);
    await link.close();
    expect(link.stats.cuts).toBeGreaterThanOrEqual(3);
    expect(st.chunksRejected).toBe(0);
    expectImages(m2, wStore);
  }, 180_000);

  it('sends format 2 index deltas to a vessel that names them, never to one naming none (an older agent)', async () => {
    const hub = await startHub({ limits: { SOLID_BROTLI_QUALITY: 5 } });
    const url = await hub.listen();
    const v = await enrolVessel(hub, 'ship-f');
    const w = await enrolVessel(hub, 'ship-g');
    // A rebuilt app layer: the same 300 files, each with the new build's mtime, one of them edited.
    const tree = Array.from({ length: 300 }, (_, i) => ({ name: `app/lib/m${i}.js`, data: prose(200 + i) }));
    const rebuilt = (k: number) => [
      base,
      tarOf(tree.map((f, i) => ({ ...f, mtime: 1_796_316_000 + k * 60, data: i === k ? prose(300) : f.data }))),
    ];
    const m1 = await publish(hub, 1, rebuilt(1));
    const m2 = await publish(hub, 2, rebuilt(2));
    const held = createChunkStore(tempDir());
    await fetchOn(hub, url, v, held, tempDir(), m1);
    const appIndex = (m: ReleaseManifest) => Object.values(m.images)[0]!.layers[1]!.index![0];
    const sizes = allReleaseChunks(m2, hub.chunkFiles);
    const wanted = held.missing(sizes.keys());
    const path = paths.vesselPacks(v.name);
    const packWith = async (headers: Record<string, string>) => {
      const s = v.sign('POST', path, { release: 'solid@2', digests: wanted, bases: [[appIndex(m2), appIndex(m1)]] });
      const r = await hub.app.inject({
        method: 'POST',
        url: path,
        headers: { ...s.headers, ...headers, accept: 'application/vnd.tender.pack' },
        payload: s.payload,
      });
      expect(r.statusCode, r.body).toBe(201);
      const { entries, consumed } = decodeDownloadEntries(r.rawPayload);
      expect(consumed).toBe(r.rawPayload.byteLength);
      const magics = entries
        .map((e) => brotliDecompressSync(e.compressed).subarray(0, 8).toString('latin1'))
        .filter((m) => m.startsWith('TNDRDL'));
      return { pack: r.rawPayload, id: String(r.headers['tender-pack-id']), magics };
    };
    // Named no formats: format 1 only, and here it costs more than the whole index (every header's mtime
    // and checksum changed), so the whole index is sent.
    expect((await packWith({})).magics).toEqual([]);
    const two = await packWith({ 'tender-delta-formats': '1,2' });
    expect(two.magics).toEqual(['TNDRDL02']);
    // Stable bytes: asked again, the same pack; and cut anywhere it resumes into the chunks asked for.
    expect((await packWith({ 'tender-delta-formats': '1,2' })).pack.equals(two.pack)).toBe(true);
    for (const cut of [0, 37, Math.floor(two.pack.byteLength / 2), two.pack.byteLength - 1]) {
      const store = createChunkStore(tempDir());
      // The base the delta names is on board; nothing else is.
      store.putRaw(appIndex(m1), held.getRaw(appIndex(m1))!);
      const sdir = tempDir();
      const state = savePackState(
        sdir,
        'solid@2',
        { id: two.id, length: two.pack.byteLength, etag: `"${two.id}"` },
        wanted,
      );
      writeFileSync(packPartPath(sdir, two.id), two.pack.subarray(0, cut));
      const counters = { bytesReceived: 0, chunksStored: 0, chunksRejected: 0, bytesStored: 0, chunksHeld: 0 };
      const sink = new PackSink({ dir: sdir, chunks: store, log }, state, sizes, counters);
      sink.write(two.pack.subarray(cut));
      sink.flush();
      expect(store.missing(wanted), `cut at ${cut}`).toEqual([]);
      expect(counters.chunksRejected).toBe(0);
    }
    // The agent's own fetch (it names the formats it applies) rebuilds the images right.
    const wStore = createChunkStore(tempDir());
    const wDir = tempDir();
    await fetchOn(hub, url, w, wStore, wDir, m1);
    const st = await fetchOn(hub, url, w, wStore, wDir, m2);
    expect(st.chunksRejected).toBe(0);
    expectImages(m2, wStore);
  }, 120_000);
});
