import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { tempDir } from './tmp.js';
import { requireTool } from './tools.js';

/**
 * Debian's Chromium, headless, driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
 * JSON messages separated by NUL on fds 3 and 4). playwright-core is not installed in this project yet
 * (see the notes); this is the part of it the browser tests need: open a page, wait for it to load,
 * run a script in it (fill a form, click), read the DOM, take a screenshot. Every wait is bounded.
 */
export interface Browser {
  page(): Promise<Page>;
  close(): Promise<void>;
}
export interface Page {
  goto(url: string): Promise<void>;
  /** Runs an expression in the page and returns its value (JSON-serialisable). */
  eval<T>(expression: string): Promise<T>;
  /** Runs an action that navigates (a submit, a click on a link) and waits for the next page to load. */
  navigating(expression: string): Promise<void>;
  url(): Promise<string>;
  text(selector: string): Promise<string>;
  screenshot(path: string): Promise<void>;
}

export const CHROMIUM = '/usr/bin/chromium';
const WAIT_MS = 20_000;

export async function launchBrowser(): Promise<Browser> {
  requireTool('chromium');
  const profile = tempDir('tender-chromium-');
  const proc: ChildProcess = spawn(
    CHROMIUM,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-dev-shm-usage',
      '--no-first-run',
      '--remote-debugging-pipe',
      `--user-data-dir=${profile}`,
      '--window-size=1400,1000',
      'about:blank',
    ],
    { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] },
  );
  const toBrowser = proc.stdio[3] as Writable;
  const fromBrowser = proc.stdio[4] as Readable;
  let stderr = '';
  proc.stderr?.on('data', (d) => (stderr = (stderr + String(d)).slice(-4000)));
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const listeners = new Set<(m: { method: string; sessionId?: string; params: unknown }) => void>();
  let buf = '';
  fromBrowser.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    let i;
    while ((i = buf.indexOf('\0')) >= 0) {
      const msg = JSON.parse(buf.slice(0, i)) as {
        id?: number;
        result?: unknown;
        error?: { message: string };
        method?: string;
        sessionId?: string;
        params?: unknown;
      };
      buf = buf.slice(i + 1);
      if (msg.id !== undefined) {
        const p = pending.get(msg.id);
        pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(`CDP: ${msg.error.message}`));
        else p?.resolve(msg.result);
      } else if (msg.method)
        for (const l of listeners) l({ method: msg.method, sessionId: msg.sessionId, params: msg.params });
    }
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  exited.then(() => {
    for (const p of pending.values()) p.reject(new Error(`chromium exited: ${stderr.slice(-1000)}`));
    pending.clear();
  });
  const send = <T>(method: string, params: object = {}, sessionId?: string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`CDP ${method} timed out`));
      }, WAIT_MS);
      pending.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v as T)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      toBrowser.write(`${JSON.stringify({ id, method, params, ...(sessionId && { sessionId }) })}\0`);
    });
  const nextEvent = (method: string, sessionId: string) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        listeners.delete(l);
        reject(new Error(`no ${method} within ${WAIT_MS} ms`));
      }, WAIT_MS);
      const l = (m: { method: string; sessionId?: string }) => {
        if (m.method === method && m.sessionId === sessionId) {
          clearTimeout(timer);
          listeners.delete(l);
          resolve();
        }
      };
      listeners.add(l);
    });

  return {
    async page() {
      const { targetId } = await send<{ targetId: string }>('Target.createTarget', { url: 'about:blank' });
      const { sessionId } = await send<{ sessionId: string }>('Target.attachToTarget', { targetId, flatten: true });
      await send('Page.enable', {}, sessionId);
      await send('Runtime.enable', {}, sessionId);
      const evaluate = async <T>(expression: string): Promise<T> => {
        const r = await send<{
          result: { value?: T };
          exceptionDetails?: { text: string; exception?: { description?: string } };
        }>('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true }, sessionId);
        if (r.exceptionDetails)
          throw new Error(`in page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
        return r.result.value as T;
      };
      return {
        async goto(url) {
          const loaded = nextEvent('Page.loadEventFired', sessionId);
          await send('Page.navigate', { url }, sessionId);
          await loaded;
        },
        eval: evaluate,
        async navigating(expression) {
          const loaded = nextEvent('Page.loadEventFired', sessionId);
          await evaluate(`void (${expression})`);
          await loaded;
        },
        url: () => evaluate<string>('location.href'),
        text: (selector) => evaluate<string>(`document.querySelector(${JSON.stringify(selector)})?.innerText ?? ''`),
        async screenshot(path) {
          const { data } = await send<{ data: string }>(
            'Page.captureScreenshot',
            { format: 'png', captureBeyondViewport: true },
            sessionId,
          );
          mkdirSync(join(path, '..'), { recursive: true });
          writeFileSync(path, Buffer.from(data, 'base64'));
        },
      };
    },
    async close() {
      await send('Browser.close').catch(() => undefined);
      const killer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    },
  };
}
