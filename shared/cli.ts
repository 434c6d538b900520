import { parseArgs, type ParseArgsConfig } from 'node:util';
import { TenderError, UsageError, errorMessage } from './errors.js';

/**
 * The one dispatcher every `tender` command goes through: `--help` on every command, human text by
 * default, `--json` for machines, and a one-line reason with a non-zero exit on error.
 */
export type OptionSpec = {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  description: string;
  /** Shown in help; the run function applies defaults itself so they stay beside the code. */
  default?: string;
};

export interface CommandContext {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
  json: boolean;
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

export interface Command {
  /** Words after `tender`, e.g. ['vessel', 'add']. */
  path: string[];
  summary: string;
  /** Positional arguments for the usage line, e.g. 'NAME' or '[RELEASE]'. */
  args?: string;
  options?: Record<string, OptionSpec>;
  /** Shown after the options in `--help`. */
  details?: string;
  run(ctx: CommandContext): Promise<unknown>;
  /** Human rendering of the result; without it the result is printed as JSON. */
  human?(result: any): string;
}

const COMMON_OPTIONS: Record<string, OptionSpec> = {
  help: { type: 'boolean', short: 'h', description: 'show this help' },
  json: { type: 'boolean', description: 'print JSON instead of text' },
};

export function stringOpt(ctx: CommandContext, name: string): string | undefined {
  const v = ctx.values[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new UsageError(`--${name} takes a value`);
  return v;
}

export function requiredOpt(ctx: CommandContext, name: string): string {
  const v = stringOpt(ctx, name);
  if (v === undefined || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

export function listOpt(ctx: CommandContext, name: string): string[] {
  const v = ctx.values[name];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map(String);
}

export function intOpt(
  ctx: CommandContext,
  name: string,
  fallback: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const v = stringOpt(ctx, name);
  if (v === undefined) return fallback;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name} must be a whole number, got ${JSON.stringify(v)}`);
  const n = Number(v);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

export function positional(ctx: CommandContext, index: number, name: string): string {
  const v = ctx.positionals[index];
  if (v === undefined || v === '') throw new UsageError(`missing ${name}`);
  return v;
}

export class Cli {
  private readonly commands: Command[] = [];

  constructor(
    private readonly name: string,
    private readonly version: string,
  ) {}

  add(...cmds: Command[]): this {
    this.commands.push(...cmds);
    return this;
  }

  /** Runs argv and returns the exit code; never throws. */
  async run(argv: string[], io: Pick<CommandContext, 'stdout' | 'stderr' | 'env'>): Promise<number> {
    const json = argv.includes('--json');
    try {
      if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
        io.stdout.write(this.overview());
        return 0;
      }
      if (argv[0] === '--version') {
        io.stdout.write(`${this.version}\n`);
        return 0;
      }
      const { command, rest } = this.find(argv);
      if (!command) return this.unknown(argv, io);
      if (rest.includes('--help') || rest.includes('-h')) {
        io.stdout.write(this.help(command));
        return 0;
      }
      const options = { ...COMMON_OPTIONS, ...(command.options ?? {}) };
      const config: ParseArgsConfig = {
        args: rest,
        allowPositionals: true,
        strict: true,
        options: Object.fromEntries(
          Object.entries(options).map(([k, o]) => [
            k,
            { type: o.type, multiple: o.multiple ?? false, ...(o.short ? { short: o.short } : {}) },
          ]),
        ),
      };
      let parsed;
      try {
        parsed = parseArgs(config);
      } catch (err) {
        throw new UsageError(
          `${errorMessage(err).replace(/\. To specify.*$/s, '')} (see: ${this.name} ${command.path.join(' ')} --help)`,
        );
      }
      const ctx: CommandContext = {
        ...io,
        values: parsed.values as CommandContext['values'],
        positionals: parsed.positionals,
        json,
      };
      const result = await command.run(ctx);
      if (result !== undefined) {
        if (json || !command.human) io.stdout.write(`${JSON.stringify(result, null, json ? undefined : 2)}\n`);
        else {
          const text = command.human(result);
          if (text) io.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
        }
      }
      return 0;
    } catch (err) {
      const message = oneLine(errorMessage(err));
      const code = err instanceof TenderError ? err.code : 'internal';
      if (json) io.stdout.write(`${JSON.stringify({ error: code, message })}\n`);
      io.stderr.write(`${this.name}: ${message}\n`);
      if (!(err instanceof TenderError) && io.env.TENDER_DEBUG) io.stderr.write(`${(err as Error).stack}\n`);
      return err instanceof TenderError ? err.exitCode : 1;
    }
  }

  private find(argv: string[]): { command?: Command; rest: string[] } {
    let best: Command | undefined;
    for (const c of this.commands) {
      if (c.path.every((w, i) => argv[i] === w) && (!best || c.path.length > best.path.length)) best = c;
    }
    return { command: best, rest: best ? argv.slice(best.path.length) : argv };
  }

  private unknown(argv: string[], io: Pick<CommandContext, 'stdout' | 'stderr'>): number {
    const group = this.commands.filter((c) => c.path[0] === argv[0]);
    if (group.length > 0 && (argv.length === 1 || argv[1] === '--help' || argv[1] === '-h')) {
      io.stdout.write(this.list(group));
      return argv.length === 1 ? 2 : 0;
    }
    const words = argv
      .filter((a) => !a.startsWith('-'))
      .slice(0, 2)
      .join(' ');
    io.stderr.write(`${this.name}: unknown command "${words}" (see: ${this.name} --help)\n`);
    return 2;
  }

  private list(cmds: Command[]): string {
    const width = Math.max(...cmds.map((c) => usageOf(c).length));
    return `${cmds.map((c) => `  ${this.name} ${usageOf(c).padEnd(width)}  ${c.summary}`).join('\n')}\n`;
  }

  overview(): string {
    const title = `${this.name} ${this.version}: ship-to-shore releases and telemetry for vessel fleets`;
    return `${title}\n\nUsage:\n${this.list(this.commands)}\nEvery command takes --help and --json.\n`;
  }

  help(c: Command): string {
    const opts = Object.entries({ ...(c.options ?? {}), ...COMMON_OPTIONS });
    const names = opts.map(([k, o]) => `--${k}${o.type === 'string' ? ' VALUE' : ''}${o.short ? `, -${o.short}` : ''}`);
    const width = Math.max(...names.map((n) => n.length));
    const lines = opts.map(
      ([, o], i) =>
        `  ${names[i]!.padEnd(width)}  ` +
        `${o.description}${o.default ? ` (default: ${o.default})` : ''}${o.multiple ? ' (repeatable)' : ''}`,
    );
    const details = c.details ? `\n${c.details.trim()}\n` : '';
    return `Usage: ${this.name} ${usageOf(c)}\n\n${c.summary}\n\nOptions:\n${lines.join('\n')}\n${details}`;
  }
}

function usageOf(c: Command): string {
  return `${c.path.join(' ')}${c.args ? ` ${c.args}` : ''}`;
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, '; ').slice(0, 2000);
}

/** Rows as a plain text table, columns padded to their widest cell. */
export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}
