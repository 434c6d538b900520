import { describe, expect, it } from 'vitest';
import { parseStrictJson } from '../../shared/trust/strict-json.js';
import { canonicalJson } from '../../shared/trust/canonical-json.js';

describe('strict JSON', () => {
  it('parses ordinary documents like JSON.parse', () => {
    const text = '{"a":[1,2,{"b":"c\\n\\u00e9"}],"d":true,"e":null,"f":-0.5}';
    expect(parseStrictJson(text)).toEqual(JSON.parse(text));
  });

  it('refuses duplicate keys, which JSON.parse would silently resolve to the last', () => {
    expect(() => parseStrictJson('{"counter":9,"counter":1}')).toThrow(/duplicate key "counter"/);
    expect(() => parseStrictJson('{"a":{"x":1,"x":2}}')).toThrow(/duplicate key "x"/);
  });

  it('refuses keys that mean something to JavaScript objects', () => {
    expect(() => parseStrictJson('{"__proto__":{"admin":true}}')).toThrow(/forbidden key "__proto__"/);
    expect(() => parseStrictJson('{"constructor":1}')).toThrow(/forbidden key/);
  });

  it('refuses integers outside the safe range and numbers that overflow', () => {
    expect(() => parseStrictJson('{"n":9007199254740993}')).toThrow(/outside the safe range/);
    expect(() => parseStrictJson('[1e400]')).toThrow(/out of range/);
    expect(parseStrictJson('[9007199254740991]')).toEqual([9007199254740991]);
  });

  it('refuses floats when the caller forbids them (signed documents)', () => {
    expect(() => parseStrictJson('{"n":1.5}', { allowFloats: false })).toThrow(/not an integer/);
    expect(() => parseStrictJson('{"n":1e3}', { allowFloats: false })).toThrow(/not an integer/);
  });

  it('refuses non-ASCII keys when asked', () => {
    expect(() => parseStrictJson('{"versi\u043en":1}', { asciiKeysOnly: true })).toThrow(/non-ASCII key/);
  });

  it('refuses nesting past the depth cap without exhausting the stack', () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    expect(() => parseStrictJson(deep, { maxBytes: 1e6 })).toThrow(/nesting deeper than 64/);
  });

  it('refuses documents over the size cap before parsing', () => {
    expect(() => parseStrictJson(`"${'x'.repeat(2000)}"`, { maxBytes: 1000 })).toThrow(/over the 1000-byte limit/);
  });

  it('refuses a leading byte order mark in bytes and in text, instead of stripping it', () => {
    expect(() => parseStrictJson(Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]))).toThrow(/byte order mark/);
    expect(() => parseStrictJson('\uFEFF{}')).toThrow(/byte order mark/);
    // Inside a string it is just a character; elsewhere it is not whitespace.
    expect(parseStrictJson('"\uFEFF"')).toBe('\uFEFF');
    expect(() => parseStrictJson('{}\uFEFF')).toThrow(/after the document/);
  });

  it('refuses invalid UTF-8, truncation, trailing data and bad escapes', () => {
    expect(() => parseStrictJson(Buffer.from([0x22, 0xff, 0xfe, 0x22]))).toThrow(/not valid UTF-8/);
    expect(() => parseStrictJson('{"a":[1,2')).toThrow(/truncated/);
    expect(() => parseStrictJson('{"a":1} x')).toThrow(/after the document/);
    expect(() => parseStrictJson('"\\x41"')).toThrow(/invalid escape/);
    expect(() => parseStrictJson('"a\nb"')).toThrow(/control character/);
    expect(() => parseStrictJson('')).toThrow(/empty document/);
    expect(() => parseStrictJson('[01]')).toThrow(/after the document|expected/);
  });
});

describe('canonical JSON', () => {
  it('sorts keys and drops whitespace so equal values give equal bytes', () => {
    expect(canonicalJson({ b: 1, a: [true, null, 'x'], c: { z: 1, y: 2 } })).toBe(
      '{"a":[true,null,"x"],"b":1,"c":{"y":2,"z":1}}',
    );
  });

  it('refuses floats and unsafe integers', () => {
    expect(() => canonicalJson({ n: 0.5 })).toThrow(/\$\.n: 0.5 is not a safe integer/);
    expect(() => canonicalJson({ n: 2 ** 60 })).toThrow(/not a safe integer/);
  });

  it('round-trips through the strict parser', () => {
    const v = { name: 'ölfeld "7"', list: [1, -2, { k: 'v' }] };
    expect(canonicalJson(parseStrictJson(canonicalJson(v)))).toBe(canonicalJson(v));
  });
});
