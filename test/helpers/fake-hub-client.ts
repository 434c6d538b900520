import { HubClient, type HubResponse, type RequestOptions } from '../../agent/hub-client.js';
import { generateKey } from '../../shared/trust/keys.js';

/**
 * The agent's real hub client over a fake transport: its typed methods (paths, bodies, parsing) run as
 * in production, and `request` answers what the test says.
 */
export function fakeHubClient(
  request: (method: string, path: string, opts: RequestOptions) => Promise<HubResponse>,
): HubClient {
  const client = new HubClient('http://hub.invalid', 'v_0000000000000000', generateKey().key);
  client.request = (method, path, opts = {}) => request(method, path, opts);
  return client;
}
