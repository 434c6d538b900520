import { createConnection, createServer, type Server } from 'node:net';
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { z } from 'zod';
import type { Logger } from 'pino';
import { TenderError, errorMessage } from '../../shared/errors.js';
import { parseStrictJson } from '../../shared/trust/strict-json.js';
import type { Controller, RollbackResult } from '../release/controller.js';

/**
 * The agent's own control socket for crew commands on board: `tender rollback` asks the running agent to
 * roll back, so the rollback can cut short the agent's own drain or gate (a second process could only
 * wait for it) and the agent carries on the tidy-up after the command has its answer. Newline-delimited
 * JSON: one request, then progress lines as the steps happen, then the result or an error.
 */
export class AgentControlError extends TenderError {}

// One request names a release and who asks.
const MAX_REQUEST_BYTES = 4096;
// The command gives up when the agent says nothing for this long (one step takes at most a gate's timeout).
const IDLE_TIMEOUT_MS = 120_000;

const requestSchema = z.strictObject({
  op: z.literal('rollback'),
  target: z.string().max(200).optional(),
  actor: z.string().max(200),
});

export function agentSocketPath(dataDir: string): string {
  return `${dataDir}/agent.sock`;
}

export type ControlLine = { progress: string } | { result: RollbackResult } | { error: string };

export async function startControlSocket(opts: {
  dataDir: string;
  controller: Controller;
  log: Logger;
}): Promise<Server> {
  const path = agentSocketPath(opts.dataDir);
  if (existsSync(path)) unlinkSync(path);
  const server = createServer((conn) => {
    let buf = '';
    let taken = false;
    conn.setEncoding('utf8');
    conn.on('error', () => conn.destroy());
    const send = (l: ControlLine) => {
      if (!conn.destroyed) conn.write(`${JSON.stringify(l)}\n`);
    };
    conn.on('data', (chunk: string) => {
      if (taken) return;
      buf += chunk;
      if (buf.length > MAX_REQUEST_BYTES) return conn.destroy();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      taken = true;
      void (async () => {
        try {
          const req = requestSchema.parse(parseStrictJson(buf.slice(0, nl), { maxBytes: MAX_REQUEST_BYTES }));
          const result = await opts.controller.rollback(req.target, req.actor, {
            progress: (line) => send({ progress: line }),
          });
          opts.log.info({ ...result, by: req.actor }, 'crew rollback from the command line');
          send({ result });
        } catch (err) {
          send({ error: errorMessage(err) });
        }
        conn.end();
      })();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  // Crew commands reach it as the owner of the state (root acts as that user) or through the group.
  chmodSync(path, 0o660);
  return server;
}

/**
 * Ask the running agent to roll back. Undefined when no agent listens (not running, or too old to have
 * the socket): the command then rolls back by itself.
 */
export function rollbackViaAgent(
  dataDir: string,
  req: { target?: string; actor: string },
  progress: (line: string) => void,
): Promise<RollbackResult | undefined> {
  return new Promise((resolve, reject) => {
    const conn = createConnection(agentSocketPath(dataDir));
    let buf = '';
    let connected = false;
    let settled = false;
    const done = (fn: () => void) => {
      if (settled) return;
      settled = true;
      conn.destroy();
      fn();
    };
    conn.setEncoding('utf8');
    conn.setTimeout(IDLE_TIMEOUT_MS, () =>
      done(() => reject(new AgentControlError(`the agent said nothing for ${IDLE_TIMEOUT_MS / 1000}s; see its log`))),
    );
    conn.on('connect', () => {
      connected = true;
      conn.write(`${JSON.stringify({ op: 'rollback', ...req })}\n`);
    });
    conn.on('error', (err: NodeJS.ErrnoException) => {
      if (!connected && (err.code === 'ENOENT' || err.code === 'ECONNREFUSED')) return done(() => resolve(undefined));
      done(() => reject(new AgentControlError(`agent control socket: ${err.code ?? err.message}`)));
    });
    conn.on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = JSON.parse(buf.slice(0, nl)) as ControlLine;
        buf = buf.slice(nl + 1);
        if ('progress' in line) progress(line.progress);
        else if ('result' in line) return done(() => resolve(line.result));
        else return done(() => reject(new AgentControlError(line.error)));
      }
    });
    conn.on('close', () =>
      done(() => reject(new AgentControlError('the agent closed the control socket without an answer'))),
    );
  });
}
