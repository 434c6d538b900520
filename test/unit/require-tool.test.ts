import { describe, expect, it } from 'vitest';
import { MissingToolError, requireTool } from '../helpers/tools.js';

describe('requireTool', () => {
  it('names the missing tool and its install command at once', () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      expect(() => requireTool('prometheus')).toThrow(MissingToolError);
      expect(() => requireTool('prometheus')).toThrow(
        /prometheus not found in PATH: install it with `apt-get install -y prometheus`/,
      );
    } finally {
      process.env.PATH = path;
    }
  });

  it('returns the path of a tool that is there', () => {
    expect(requireTool('tar')[0]).toMatch(/\/tar$/);
  });
});
