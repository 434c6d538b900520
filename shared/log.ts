import pino, { type Logger } from 'pino';

/** JSON logs to stdout (journald picks them up under systemd). Level from TENDER_LOG_LEVEL or the caller. */
export function createLogger(name: string, level?: string): Logger {
  return pino({
    name,
    level: level ?? process.env.TENDER_LOG_LEVEL ?? 'info',
    base: { pid: process.pid, name },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
