import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../agent/config.js';
import { tempDir } from '../helpers/tmp.js';

describe('agent config', () => {
  const base = {
    version: 1,
    hub: 'http://127.0.0.1:1',
    vesselName: 'ship',
    vesselId: 'v_0123456789abcdef',
    dataDir: '/var/lib/tender',
  };

  it('fills defaults for a minimal config', () => {
    const file = join(tempDir(), 'agent.json');
    writeFileSync(file, JSON.stringify(base));
    expect(loadAgentConfig(file)).toMatchObject({ pollIntervalSeconds: 60, maxBackoffSeconds: 900 });
  });

  it('names the file and the field that is wrong', () => {
    const file = join(tempDir(), 'agent.json');
    writeFileSync(file, JSON.stringify({ ...base, pollIntervalSeconds: 0 }));
    expect(() => loadAgentConfig(file)).toThrow(new RegExp(`${file}: field pollIntervalSeconds: .*`));
    writeFileSync(file, JSON.stringify({ ...base, hub: 'not a url' }));
    expect(() => loadAgentConfig(file)).toThrow(/field hub/);
    writeFileSync(file, JSON.stringify({ ...base, surprise: true }));
    expect(() => loadAgentConfig(file)).toThrow(/surprise/);
  });

  it('refuses duplicate keys and says which file', () => {
    const file = join(tempDir(), 'agent.json');
    writeFileSync(file, '{"version":1,"version":1}');
    expect(() => loadAgentConfig(file)).toThrow(new RegExp(`${file}: duplicate key "version"`));
  });

  it('says how to fix a missing config', () => {
    expect(() => loadAgentConfig('/nonexistent/agent.json')).toThrow(
      /no such file \(enrol first: tender agent enroll\)/,
    );
  });
});
