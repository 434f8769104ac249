/**
 * Regression: at a start with `gateway.tls`, the certificate and key were parsed twice: once by the config check
 * (a TLS context made only to see that they work) and again by node's HTTPS server, which builds its own context
 * from the PEM text and takes no ready-made one. The check now makes the HTTPS server itself (not listening), and
 * the start serves with that server: one parse, and what is served is what the check read. A reload still reads
 * and checks the files, as before (an unusable certificate refuses it and the served one is unchanged), and now
 * serves a pair that differs from the one in service (renewed in place, or other files) to new connections: it
 * was checked and never served until a restart.
 *
 * A reload that put a changed pair into service parsed it twice: once by the check (an HTTPS server made only to
 * see that it works) and again by `setSecureContext`. Now putting it into service is the reload's one parse (an
 * unusable pair is refused by it, changing nothing), and a pair that is already in service is not parsed again.
 * The files are read once either way (by the check), so no file rewritten between two reads can show the
 * difference: the parses are counted as in the start's case.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { connect, type SecureContextOptions } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { loadConfig, type ConfigError } from '../../src/config/load.js';
import { startGateway, type Gateway } from '../../src/gateway.js';
import { selfSigned } from '../helpers/tls.js';
import { cleanupDirs, memoryLogger, startInProcess, startProcess, tmpDir, type GatewayProcess } from '../helpers/env.js';

const tls = createRequire(import.meta.url)('node:tls') as typeof import('node:tls');
let gw: Gateway | undefined;
let proc: GatewayProcess | undefined;
afterAll(async () => {
  await gw?.close();
  await proc?.stop();
  cleanupDirs();
});

/** The fingerprint of the certificate the server at `url` presents (trusting `ca`). */
function servedFingerprint(url: string, ca: string): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: Number(port), ca, servername: 'localhost' }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.end();
    });
    s.once('error', reject);
  });
}

/** POST /admin/config/reload over HTTPS (trusting `ca`): status and JSON body. */
function reload(url: string, ca: string): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/admin/config/reload`, { method: 'POST', ca }, (res) => {
      let text = '';
      res.on('data', (b: Buffer) => (text += b.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(text) }));
    });
    req.once('error', reject);
    req.end();
  });
}

const mock = { name: 'm', provider: 'mock', models: ['m-1'] };

/** Runs `fn` counting the TLS contexts made from the certificate `pem` meanwhile (node's servers make theirs through this export). */
async function parsesOf<T>(pem: string, fn: () => Promise<T>): Promise<{ result: T; count: number }> {
  const original = tls.createSecureContext;
  let count = 0;
  tls.createSecureContext = (o?: SecureContextOptions) => {
    if (o?.cert === pem) count++;
    return original(o);
  };
  syncBuiltinESMExports();
  try {
    return { result: await fn(), count };
  } finally {
    tls.createSecureContext = original;
    syncBuiltinESMExports();
  }
}

describe('gateway.tls', () => {
  it('is parsed once at a start, and the server presents the certificate the check read', async () => {
    const dir = tmpDir();
    const files = selfSigned(dir, 'once');
    const pem = readFileSync(files.cert, 'utf8');
    // count the TLS contexts made from this certificate (node's HTTPS server makes its own through this export)
    const original = tls.createSecureContext;
    let parses = 0;
    tls.createSecureContext = (o?: SecureContextOptions) => {
      if (o?.cert === pem) parses++;
      return original(o);
    };
    syncBuiltinESMExports();
    try {
      gw = await startInProcess({ gateway: { tls: files }, channels: [mock] });
    } finally {
      tls.createSecureContext = original;
      syncBuiltinESMExports();
    }
    expect(parses).toBe(1);
    expect(gw.url).toMatch(/^https:\/\//);
    expect(await servedFingerprint(gw.url, pem)).toBe(new X509Certificate(pem).fingerprint256);
  });

  it('a reload parses a renewed certificate once, when it puts it into service, and the one in service not again', async () => {
    const dir = tmpDir();
    const first = selfSigned(dir, 'first');
    const firstPem = readFileSync(first.cert, 'utf8');
    const cfgFile = join(dir, 'switchyard.json5');
    writeFileSync(cfgFile, JSON.stringify({ gateway: { port: 0, tls: { cert: './first-cert.pem', key: './first-key.pem' } }, channels: [mock] }));
    const inProcess = await startGateway(loadConfig(cfgFile), { logger: memoryLogger().logger });
    try {
      const renewed = selfSigned(tmpDir(), 'renewed');
      const renewedPem = readFileSync(renewed.cert, 'utf8');
      writeFileSync(first.key, readFileSync(renewed.key));
      writeFileSync(first.cert, renewedPem);
      const parses = await parsesOf(renewedPem, () => inProcess.reload());
      expect(parses.result).toEqual({ applied: ['gateway.tls: the certificate and key read now serve new connections'], restartRequired: [] });
      expect(parses.count).toBe(1);
      expect(await servedFingerprint(inProcess.url, firstPem + renewedPem)).toBe(new X509Certificate(renewedPem).fingerprint256);
      // the same pair again: it is the one in service
      const again = await parsesOf(renewedPem, () => inProcess.reload());
      expect(again).toEqual({ result: { applied: [], restartRequired: [] }, count: 0 });
      // an unusable certificate in a file with another problem: parsed once too, its problem listed in its place
      const junk = 'not a certificate\n';
      writeFileSync(first.cert, junk);
      const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
      cfg.channels.push({ name: 'oa', provider: 'openai', baseUrl: 'http://127.0.0.1:9/v1', options: { responsesApi: 'yes' }, models: ['x'] });
      writeFileSync(cfgFile, JSON.stringify(cfg));
      const refused = await parsesOf(junk, () => inProcess.reload().catch((err: unknown) => err));
      expect(refused.count).toBe(1);
      expect((refused.result as ConfigError).problems).toEqual([
        'gateway.tls: not a usable certificate and key (error:0480006C:PEM routines::no start line)',
        'channels.1.options.responsesApi: channel oa: options.responsesApi must be a boolean',
      ]);
      expect(await servedFingerprint(inProcess.url, renewedPem)).toBe(new X509Certificate(renewedPem).fingerprint256);
    } finally {
      await inProcess.close();
    }
  });

  it('a reload reads the files again: an unusable certificate refuses it, and the served one is unchanged', async () => {
    const dir = tmpDir();
    const first = selfSigned(dir, 'first');
    const pem = readFileSync(first.cert, 'utf8');
    proc = await startProcess({ gateway: { tls: { cert: './first-cert.pem', key: './first-key.pem' } }, channels: [mock] }, {}, dir);
    expect(await servedFingerprint(proc.url, pem)).toBe(new X509Certificate(pem).fingerprint256);

    writeFileSync(first.cert, 'not a certificate\n');
    const refused = await reload(proc.url, pem);
    expect(refused.status).toBe(500);
    expect(refused.json.error).toMatchObject({
      code: 'config_invalid',
      details: { problems: ['gateway.tls: not a usable certificate and key (error:0480006C:PEM routines::no start line)'] },
    });
    expect(await servedFingerprint(proc.url, pem)).toBe(new X509Certificate(pem).fingerprint256);

    writeFileSync(first.cert, pem);
    expect(await reload(proc.url, pem)).toEqual({ status: 200, json: { applied: [], restartRequired: [] } });
  });

  // a certificate renewed in place (certbot and the like rewrite the same files) was never served: the reload
  // compared the config's values, found nothing changed, and the old certificate stayed until a restart
  it('a reload puts a renewed certificate (the same files rewritten, or other files) into service for new connections', async () => {
    const dir = tmpDir();
    const first = selfSigned(dir, 'first');
    const firstPem = readFileSync(first.cert, 'utf8');
    const proc2 = await startProcess({ gateway: { tls: { cert: './first-cert.pem', key: './first-key.pem' } }, channels: [mock] }, {}, dir);
    try {
      expect(await servedFingerprint(proc2.url, firstPem)).toBe(new X509Certificate(firstPem).fingerprint256);

      // renewed in place: a new key pair and certificate at the same paths
      const renewed = selfSigned(tmpDir(), 'renewed');
      const renewedPem = readFileSync(renewed.cert, 'utf8');
      writeFileSync(first.key, readFileSync(renewed.key));
      writeFileSync(first.cert, renewedPem);
      const r1 = await reload(proc2.url, firstPem + renewedPem);
      expect(r1).toEqual({ status: 200, json: { applied: ['gateway.tls: the certificate and key read now serve new connections'], restartRequired: [] } });
      expect(await servedFingerprint(proc2.url, renewedPem)).toBe(new X509Certificate(renewedPem).fingerprint256);

      // other files named in the config
      const other = selfSigned(dir, 'other');
      const otherPem = readFileSync(other.cert, 'utf8');
      const cfgFile = proc2.configPath;
      const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
      cfg.gateway.tls = { cert: './other-cert.pem', key: './other-key.pem' };
      writeFileSync(cfgFile, JSON.stringify(cfg));
      const r2 = await reload(proc2.url, renewedPem + otherPem);
      expect(r2).toEqual({ status: 200, json: { applied: ['gateway.tls: the certificate and key read now serve new connections'], restartRequired: [] } });
      expect(await servedFingerprint(proc2.url, otherPem)).toBe(new X509Certificate(otherPem).fingerprint256);

      // nothing new: nothing applied
      expect(await reload(proc2.url, otherPem)).toEqual({ status: 200, json: { applied: [], restartRequired: [] } });
      // TLS turned off: a restart
      delete cfg.gateway.tls;
      writeFileSync(cfgFile, JSON.stringify(cfg));
      expect(await reload(proc2.url, otherPem)).toEqual({ status: 200, json: { applied: [], restartRequired: ['gateway.tls'] } });
      expect(await servedFingerprint(proc2.url, otherPem)).toBe(new X509Certificate(otherPem).fingerprint256);
    } finally {
      await proc2.stop();
    }
  });
});
