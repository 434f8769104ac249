/**
 * What every paged admin list (`GET /admin/sessions`, `GET /admin/keys`; src/http/routes/admin-page.ts) is held to
 * alike: the `limit` values it refuses, and the refusal, 400 invalid_request naming `limit` in the API's format.
 */
import { expect } from 'vitest';

/** out of 1-1000, or not a whole number in decimal digits */
export const BAD_LIMITS = ['0', '-1', '1001', 'abc', '1.5', '1e3', '10.5'];

export async function adminGetJson(url: string, path: string, token: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json() };
}

/** `path` (with a `?` or `&` at its end) and `limit=<v>` is refused naming limit, never a 500 */
export async function expectLimitRefused(url: string, path: string, token: string, v: string): Promise<void> {
  const r = await adminGetJson(url, `${path}limit=${encodeURIComponent(v)}`, token);
  expect(r.status).toBe(400);
  expect(r.body.error).toMatchObject({ code: 'invalid_request', param: 'limit', message: 'limit: an integer from 1 to 1000' });
}
