import { mkdir, mkdtemp, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClientHandlers, keepTail } from '../../src/acp/runtimes/agent/client-handlers.js';
import { isInside, resolveInside, resolveSessionFolder, safeFolderName } from '../../src/acp/runtimes/agent/workspace.js';

let base: string;
let root: string;
let outside: string;

beforeAll(async () => {
  base = await realpath(await mkdtemp(path.join(tmpdir(), 'sy-ws-')));
  root = path.join(base, 'workspaces');
  outside = path.join(base, 'secret');
  await mkdir(outside, { recursive: true });
  await writeFile(path.join(outside, 'passwd'), 'top secret');
});
afterAll(() => rm(base, { recursive: true, force: true }));

describe('isInside / safeFolderName', () => {
  it('compares whole path segments', () => {
    expect(isInside('/w/a', '/w/a')).toBe(true);
    expect(isInside('/w/a', '/w/a/b/c')).toBe(true);
    expect(isInside('/w/a', '/w/ab')).toBe(false);
    expect(isInside('/w/a', '/w')).toBe(false);
    expect(isInside('/w/a', '/w/a/../b')).toBe(false);
  });
  it('makes one safe segment out of anything', () => {
    expect(safeFolderName('sess-1.a_b')).toBe('sess-1.a_b');
    expect(safeFolderName('../../etc')).toBe('__.._etc');
    expect(safeFolderName('a/b\\c d')).toBe('a_b_c_d');
    expect(safeFolderName('')).toBe('session');
  });
});

describe('resolveSessionFolder', () => {
  it('uses the session name without a hint, and creates the folder (and the root)', async () => {
    const dir = await resolveSessionFolder(root, undefined, 's/1');
    expect(dir).toBe(path.join(root, 's_1'));
    expect((await stat(dir)).isDirectory()).toBe(true);
  });

  it('accepts relative hints and absolute hints inside the root', async () => {
    expect(await resolveSessionFolder(root, 'proj/app', 's2')).toBe(path.join(root, 'proj', 'app'));
    expect(await resolveSessionFolder(root, path.join(root, 'abs'), 's3')).toBe(path.join(root, 'abs'));
    expect(await resolveSessionFolder(root, '.', 's4')).toBe(path.join(root, 's4'));
  });

  it('rejects traversal, absolute paths outside, NUL bytes and symlinked escapes', async () => {
    await expect(resolveSessionFolder(root, '../secret', 's')).rejects.toMatchObject({
      code: 'INVALID_REQUEST',
      param: 'workingDirectory',
      message: expect.stringContaining('".."'),
    });
    await expect(resolveSessionFolder(root, 'a/../../secret', 's')).rejects.toThrow('must not contain ".."');
    await expect(resolveSessionFolder(root, outside, 's')).rejects.toThrow('is outside the workspace root');
    await expect(resolveSessionFolder(root, '/etc', 's')).rejects.toThrow('is outside the workspace root');
    await expect(resolveSessionFolder(root, 'a\0b', 's')).rejects.toThrow('NUL byte');
    await symlink(outside, path.join(root, 'link-out'));
    await expect(resolveSessionFolder(root, 'link-out', 's')).rejects.toThrow('outside');
    await expect(resolveSessionFolder(root, 'link-out/deeper', 's')).rejects.toThrow('outside');
  });

  it('a folder of one name right under the root is held to the same rules: links, dangling links, files, ..', async () => {
    // the session's own name (no hint) and a one-name hint take the short way, which must decide as the long one
    await symlink(outside, path.join(root, 'sess-out'));
    await expect(resolveSessionFolder(root, undefined, 'sess-out')).rejects.toThrow('outside');
    await expect(resolveSessionFolder(root, 'sess-out', 's')).rejects.toThrow('outside');
    expect(await stat(path.join(outside, 'passwd'))).toBeTruthy();
    // a link that stays inside is followed, as resolveInside follows it
    await mkdir(path.join(root, 'real-in'), { recursive: true });
    await symlink(path.join(root, 'real-in'), path.join(root, 'link-in'));
    expect(await resolveSessionFolder(root, 'link-in', 's')).toBe(path.join(root, 'real-in'));
    // a dangling link is refused (writing through it could land outside), and nothing is made where it points
    await symlink(path.join(outside, 'made-by-agent'), path.join(root, 'dangling'));
    await expect(resolveSessionFolder(root, 'dangling', 's')).rejects.toThrow('dangling symlink');
    await expect(resolveSessionFolder(root, undefined, 'dangling')).rejects.toThrow('dangling symlink');
    await expect(stat(path.join(outside, 'made-by-agent'))).rejects.toMatchObject({ code: 'ENOENT' });
    // a file of that name is no folder
    await writeFile(path.join(root, 'plain-file'), 'x');
    await expect(resolveSessionFolder(root, 'plain-file', 's')).rejects.toMatchObject({ code: 'EEXIST' });
    await expect(resolveSessionFolder(root, '..', 's')).rejects.toThrow('must not contain ".."');
    // a root that does not exist yet is made
    const fresh = path.join(base, 'fresh-root');
    expect(await resolveSessionFolder(fresh, undefined, 'first')).toBe(path.join(fresh, 'first'));
  });
});

describe('resolveInside', () => {
  let ws: string;
  beforeAll(async () => {
    ws = await resolveSessionFolder(root, 'confined', 'x');
    await mkdir(path.join(ws, 'sub'), { recursive: true });
    await writeFile(path.join(ws, 'sub', 'a.txt'), 'a');
    await symlink(path.join(outside, 'passwd'), path.join(ws, 'passwd-link'));
    await symlink(outside, path.join(ws, 'dir-link'));
    await symlink(path.join(ws, 'sub'), path.join(ws, 'inner-link'));
    await symlink(path.join(outside, 'does-not-exist'), path.join(ws, 'dangling'));
  });

  it('resolves existing and not-yet-existing paths inside', async () => {
    expect(await resolveInside(ws, path.join(ws, 'sub', 'a.txt'))).toBe(path.join(ws, 'sub', 'a.txt'));
    expect(await resolveInside(ws, path.join(ws, 'new', 'deep', 'file.txt'))).toBe(path.join(ws, 'new', 'deep', 'file.txt'));
    expect(await resolveInside(ws, 'sub/a.txt')).toBe(path.join(ws, 'sub', 'a.txt'));
    expect(await resolveInside(ws, ws)).toBe(ws);
  });

  it('follows symlinks that stay inside', async () => {
    expect(await resolveInside(ws, path.join(ws, 'inner-link', 'a.txt'))).toBe(path.join(ws, 'sub', 'a.txt'));
  });

  it('rejects traversal, outside paths, symlink escapes, dangling links and NUL', async () => {
    await expect(resolveInside(ws, path.join(ws, '..', 'secret', 'passwd'))).rejects.toThrow('is outside the session workspace');
    await expect(resolveInside(ws, path.join(outside, 'passwd'))).rejects.toMatchObject({ code: 'INVALID_REQUEST', param: 'path' });
    await expect(resolveInside(ws, path.join(ws, 'passwd-link'))).rejects.toThrow('outside');
    await expect(resolveInside(ws, path.join(ws, 'dir-link', 'passwd'))).rejects.toThrow('outside');
    await expect(resolveInside(ws, path.join(ws, 'dir-link', 'new-file'))).rejects.toThrow('outside');
    await expect(resolveInside(ws, path.join(ws, 'dangling'))).rejects.toThrow('dangling symlink');
    await expect(resolveInside(ws, path.join(ws, 'a\0b'))).rejects.toThrow('NUL byte');
    await expect(resolveInside(ws, '', 'cwd')).rejects.toThrow('cwd is required');
  });
});

describe('client handlers, called directly', () => {
  const ctx = { id: 1, signal: new AbortController().signal };
  const allowOnly = { sessionId: 's', toolCall: {}, options: [{ optionId: 'a', name: 'Allow', kind: 'allow_once' }] };

  it('deny without a reject option answers cancelled; allow without an allow option too', async () => {
    const ws = await resolveSessionFolder(root, 'handlers', 'h');
    const deny = createClientHandlers({ agentName: 'agent "t"', workspace: ws, permissions: 'deny' });
    expect(await deny.handlers['session/request_permission']!(allowOnly, ctx)).toEqual({ outcome: { outcome: 'cancelled' } });
    const allow = createClientHandlers({ agentName: 'agent "t"', workspace: ws, permissions: 'allow' });
    expect(await allow.handlers['session/request_permission']!({ ...allowOnly, options: [] }, ctx)).toEqual({ outcome: { outcome: 'cancelled' } });
  });

  it('an option without a string optionId is never selected: allow picks the first well-formed one, or cancels', async () => {
    const ws = await resolveSessionFolder(root, 'handlers-opts', 'h');
    const allow = createClientHandlers({ agentName: 'agent "t"', workspace: ws, permissions: 'allow' });
    const ask = (options: unknown[]) => allow.handlers['session/request_permission']!({ sessionId: 's', toolCall: {}, options }, ctx);
    expect(await ask([{ name: 'no id', kind: 'allow_once' }])).toEqual({ outcome: { outcome: 'cancelled' } });
    expect(await ask([{ optionId: { evil: 1 }, kind: 'allow_once' }, null, { optionId: 'ok', kind: 'allow_always' }])).toEqual({
      outcome: { outcome: 'selected', optionId: 'ok' },
    });
  });

  it('validates params and confines terminal cwd', async () => {
    const ws = await resolveSessionFolder(root, 'handlers2', 'h');
    const c = createClientHandlers({ agentName: 'agent "t"', workspace: ws, permissions: 'allow', maxTerminals: 1 });
    await expect(c.handlers['fs/read_text_file']!(null, ctx)).rejects.toMatchObject({ code: -32602, message: 'params must be an object' });
    await expect(c.handlers['fs/write_text_file']!({ path: path.join(ws, 'x'), content: 5 }, ctx)).rejects.toThrow('content must be a string');
    await expect(c.handlers['terminal/create']!({ command: 'true', cwd: outside }, ctx)).rejects.toMatchObject({
      code: -32602,
      message: expect.stringContaining('cwd'),
    });
    const t = (await c.handlers['terminal/create']!({ command: 'sleep', args: ['5'] }, ctx)) as { terminalId: string };
    await expect(c.handlers['terminal/create']!({ command: 'true' }, ctx)).rejects.toThrow('too many terminals');
    await c.handlers['terminal/kill']!(t, ctx);
    expect(await c.handlers['terminal/wait_for_exit']!(t, ctx)).toEqual({ exitCode: null, signal: 'SIGKILL' });
    await c.handlers['terminal/release']!(t, ctx);
    await expect(c.handlers['terminal/output']!(t, ctx)).rejects.toMatchObject({ code: -32002 });
    c.dispose();
  });

  it('keepTail cuts at a UTF-8 boundary', () => {
    const b = Buffer.from('aé€x'); // 1 + 2 + 3 + 1 bytes
    expect(keepTail(b, 100).toString()).toBe('aé€x');
    expect(keepTail(b, 5).toString()).toBe('€x');
    expect(keepTail(b, 3).toString()).toBe('x');
  });
});
