import { TenderError } from '../errors.js';

// Hand-written on purpose, not a library: no maintained JSON parser refuses duplicate keys and reports
// where, and a verifier that parses differently from its consumer is the attack (ATTACKS.md 18).

/**
 * A JSON parser for bytes that cross a trust boundary. `JSON.parse` keeps the last of two duplicate keys
 * silently, accepts `1e400` as Infinity, `__proto__` as a key and any nesting depth until the stack
 * blows; a verifier and a consumer could then disagree about what a signed document says. This parser
 * refuses all of those with a message that says where.
 */
export class StrictJsonError extends TenderError {
  constructor(message: string) {
    super(message, 'invalid_json', 1, 400);
  }
}

export interface StrictJsonOptions {
  /** Bytes; a document larger than this is refused before parsing. */
  maxBytes?: number;
  /** Nesting of objects and arrays. */
  maxDepth?: number;
  /** Signed documents forbid fractions so that every number has exactly one spelling. */
  allowFloats?: boolean;
  /** Signed documents use ASCII keys only so that no two keys look alike. */
  asciiKeysOnly?: boolean;
}

/** Names that mean something to JavaScript objects; a document that uses them as keys is refused. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

// A megabyte covers every control document (roots, policies, directives); manifests set their own cap.
const DEFAULT_MAX_BYTES = 1024 * 1024;
// Real documents nest a handful of levels; 64 leaves room and keeps recursion far from the stack limit.
const DEFAULT_MAX_DEPTH = 64;

// ignoreBOM keeps a leading U+FEFF in the text (the default strips it silently), so it can be refused.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const BOM = '\uFEFF';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export function parseStrictJson(input: Uint8Array | string, options: StrictJsonOptions = {}): JsonValue {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const size = typeof input === 'string' ? Buffer.byteLength(input) : input.byteLength;
  if (size > maxBytes) throw new StrictJsonError(`document is ${size} bytes, over the ${maxBytes}-byte limit`);
  let text: string;
  if (typeof input === 'string') {
    text = input;
  } else {
    try {
      text = utf8.decode(input);
    } catch {
      throw new StrictJsonError('document is not valid UTF-8');
    }
  }
  // A verifier and a consumer must see the same bytes: a byte order mark that one of them strips and the
  // other keeps is refused, not skipped.
  if (text.startsWith(BOM)) throw new StrictJsonError('document starts with a byte order mark (U+FEFF)');
  const parser = new Parser(text, {
    maxDepth: options.maxDepth ?? DEFAULT_MAX_DEPTH,
    allowFloats: options.allowFloats ?? true,
    asciiKeysOnly: options.asciiKeysOnly ?? false,
  });
  return parser.parseDocument();
}

class Parser {
  private pos = 0;

  constructor(
    private readonly text: string,
    private readonly opts: { maxDepth: number; allowFloats: boolean; asciiKeysOnly: boolean },
  ) {}

  parseDocument(): JsonValue {
    this.skipWhitespace();
    if (this.pos >= this.text.length) this.fail('empty document');
    const value = this.parseValue(0);
    this.skipWhitespace();
    if (this.pos < this.text.length) this.fail('unexpected data after the document');
    return value;
  }

  private fail(reason: string): never {
    throw new StrictJsonError(`${reason} at offset ${this.pos}`);
  }

  private skipWhitespace(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.pos++;
      else break;
    }
  }

  private parseValue(depth: number): JsonValue {
    const c = this.text[this.pos];
    switch (c) {
      case '{':
        return this.parseObject(depth + 1);
      case '[':
        return this.parseArray(depth + 1);
      case '"':
        return this.parseString();
      case 't':
        return this.parseLiteral('true', true);
      case 'f':
        return this.parseLiteral('false', false);
      case 'n':
        return this.parseLiteral('null', null);
      default:
        if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.parseNumber();
        return this.fail(c === undefined ? 'truncated document' : `unexpected character ${JSON.stringify(c)}`);
    }
  }

  private parseLiteral<T extends JsonValue>(word: string, value: T): T {
    if (this.text.startsWith(word, this.pos)) {
      this.pos += word.length;
      return value;
    }
    return this.fail('invalid literal');
  }

  private enter(depth: number): void {
    if (depth > this.opts.maxDepth) this.fail(`nesting deeper than ${this.opts.maxDepth} levels`);
  }

  private parseObject(depth: number): { [key: string]: JsonValue } {
    this.enter(depth);
    this.pos++; // {
    const out: { [key: string]: JsonValue } = {};
    const seen = new Set<string>();
    this.skipWhitespace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipWhitespace();
      if (this.text[this.pos] !== '"') this.fail('expected a string key');
      const keyStart = this.pos;
      const key = this.parseString();
      if (seen.has(key)) {
        this.pos = keyStart;
        this.fail(`duplicate key ${JSON.stringify(key)}`);
      }
      if (FORBIDDEN_KEYS.has(key)) {
        this.pos = keyStart;
        this.fail(`forbidden key ${JSON.stringify(key)}`);
      }

      if (this.opts.asciiKeysOnly && /[^\x20-\x7e]/.test(key)) {
        this.pos = keyStart;
        this.fail(`non-ASCII key ${JSON.stringify(key)}`);
      }
      seen.add(key);
      this.skipWhitespace();
      if (this.text[this.pos] !== ':') this.fail("expected ':'");
      this.pos++;
      this.skipWhitespace();
      out[key] = this.parseValue(depth);
      this.skipWhitespace();
      const c = this.text[this.pos];
      if (c === ',') {
        this.pos++;
        continue;
      }
      if (c === '}') {
        this.pos++;
        return out;
      }
      this.fail(c === undefined ? 'truncated document' : "expected ',' or '}'");
    }
  }

  private parseArray(depth: number): JsonValue[] {
    this.enter(depth);
    this.pos++; // [
    const out: JsonValue[] = [];
    this.skipWhitespace();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipWhitespace();
      out.push(this.parseValue(depth));
      this.skipWhitespace();
      const c = this.text[this.pos];
      if (c === ',') {
        this.pos++;
        continue;
      }
      if (c === ']') {
        this.pos++;
        return out;
      }
      this.fail(c === undefined ? 'truncated document' : "expected ',' or ']'");
    }
  }

  private parseString(): string {
    const t = this.text;
    this.pos++; // opening quote
    let out = '';
    let runStart = this.pos;
    for (;;) {
      if (this.pos >= t.length) this.fail('unterminated string');
      const c = t.charCodeAt(this.pos);
      if (c === 0x22) {
        out += t.slice(runStart, this.pos);
        this.pos++;
        return out;
      }
      if (c < 0x20) this.fail('control character in string');
      if (c === 0x5c) {
        out += t.slice(runStart, this.pos);
        out += this.parseEscape();
        runStart = this.pos;
        continue;
      }
      this.pos++;
    }
  }

  private parseEscape(): string {
    const t = this.text;
    const e = t[this.pos + 1];
    this.pos += 2;
    switch (e) {
      case '"':
        return '"';
      case '\\':
        return '\\';
      case '/':
        return '/';
      case 'b':
        return '\b';
      case 'f':
        return '\f';
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      case 'u': {
        const hex = t.slice(this.pos, this.pos + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('invalid \\u escape');
        this.pos += 4;
        return String.fromCharCode(parseInt(hex, 16));
      }
      default:
        this.pos -= 2;
        return this.fail('invalid escape');
    }
  }

  private parseNumber(): number {
    const rest = this.text.slice(this.pos, this.pos + 400);
    const m = /^-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(rest);
    if (!m) return this.fail('invalid number');
    const literal = m[0];
    const isInteger = m[1] === undefined && m[2] === undefined;
    if (!isInteger && !this.opts.allowFloats) this.fail(`number ${literal} is not an integer`);
    const value = Number(literal);
    if (!Number.isFinite(value)) this.fail(`number ${literal} is out of range`);
    if (isInteger && !Number.isSafeInteger(value)) this.fail(`integer ${literal} is outside the safe range`);
    this.pos += literal.length;
    return value;
  }
}
