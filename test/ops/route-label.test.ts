/**
 * The `route` label of the request metrics and server spans (routeLabel, src/obs/request-meter.ts): a family's
 * bare path has the family's label, like the paths under it. `/v1beta` (which the Gemini edge serves), `/v1` and
 * `/admin` were `other` while `/v1beta/...`, `/v1/...` and `/admin/...` had their family's label.
 */
import { describe, expect, it } from 'vitest';
import { routeLabel } from '../../src/obs/request-meter.js';

describe('routeLabel', () => {
  it("labels a family's bare path as the family", () => {
    expect(routeLabel('/v1beta')).toBe('/v1beta');
    expect(routeLabel('/v1beta/models/gemini:generateContent')).toBe('/v1beta');
    expect(routeLabel('/v1')).toBe('/v1/other');
    expect(routeLabel('/v1/')).toBe('/v1/other');
    expect(routeLabel('/v1/files')).toBe('/v1/other');
    expect(routeLabel('/admin')).toBe('/admin');
    expect(routeLabel('/admin/status')).toBe('/admin');
    expect(routeLabel('/ui')).toBe('/ui');
    expect(routeLabel('/ui/app.js')).toBe('/ui');
    expect(routeLabel('/acp')).toBe('/acp');
    expect(routeLabel('/acp/rpc')).toBe('/acp');
    expect(routeLabel('/acp-server/x')).toBe('/acp');
  });

  it("labels the task sessions' REST routes as theirs (they were `other`)", () => {
    expect(routeLabel('/api/v1/sessions/s1/events')).toBe('/api/v1/sessions');
    expect(routeLabel('/api/v1/sessions/s1/messages')).toBe('/api/v1/sessions');
    expect(routeLabel('/api/v1/other')).toBe('other');
  });

  it('keeps the known paths as they are', () => {
    for (const p of ['/v1/chat/completions', '/v1/embeddings', '/v1/models', '/v1/messages', '/v1/responses', '/metrics', '/healthz', '/readyz']) {
      expect(routeLabel(p)).toBe(p);
    }
  });

  it('a path that only begins like a family is not in it', () => {
    expect(routeLabel('/v1betax')).toBe('other');
    expect(routeLabel('/v10/chat/completions')).toBe('other');
    expect(routeLabel('/administrator')).toBe('other');
    expect(routeLabel('/uix')).toBe('other');
    expect(routeLabel('/')).toBe('other');
  });
});
