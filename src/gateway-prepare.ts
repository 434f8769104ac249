/**
 * What a config needs beyond its schema before a gateway can run it, checked by one function at start, at a
 * reload and by `switchyard config check`, so that the three accept and refuse the same files with the same
 * messages:
 * - the files it names: `gateway.tls.cert` and `key` and each outbound bridge's `ca`, each read once, here. The
 *   certificate and key are parsed once: at a start and by `config check`, here, by making the HTTPS server from
 *   them (not listening, no handler), which a start then serves with and `config check` drops; at a reload
 *   (`tls: 'later'`), by the reload itself, which puts them into the running server's service with that one parse
 *   (`setSecureContext`), or checks them when it will not serve them (src/gateway-reload.ts). A file refused for
 *   another problem has them parsed here all the same, so that the refusal lists theirs too. The bridge dialers
 *   are given the `ca` text read, so a start or a reload that passed this check reads no file after it;
 * - where its store is (src/sessions/store-location.ts): `store.path` a file SQLite can open or create there,
 *   `store.url` a URL the Redis client can parse; checked without opening, creating or changing anything, so a
 *   start refuses a bad path here, before anything tries to create it (a recursive mkdir under /proc never
 *   returns);
 * - its channels' providers, constructed as the gateway runs them. `options` is free-form in the schema and each
 *   provider checks its own when it is made (CONFIG_INVALID); a refusal is a problem under the channel's key
 *   path. Constructing a provider opens no connection (its pool connects on its first request).
 * Every problem is listed by key path in one ConfigError (scrubbed of the file's secrets: configRefusal), and every
 * provider made here is then closed.
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { createSecureContext } from 'node:tls';
import { configRefusal, resolvePath, type LoadedConfig } from './config/load.js';
import type { ChannelConfig } from './config/schema.js';
import type { ChannelProvider } from './providers/provider.js';
import { createProvider } from './providers/registry.js';
import { redisUrlProblem, sqlitePathProblem } from './sessions/store-location.js';
import { GatewayError } from './wire/errors.js';
import { createNodeServer } from './http/server.js';

export interface Prepared {
  /** the providers made, by channel name, in the file's order: every channel, or those `channels` picked */
  providers: Map<string, ChannelProvider>;
  /** the HTTPS server made from `gateway.tls` (not listening, no handler yet): the start serves with it */
  https: Server | undefined;
  /** `gateway.tls`'s PEM text as read: parsed (by making `https`), or, with `tls: 'later'`, not parsed yet */
  tls: { cert: string; key: string } | undefined;
  /** each outbound bridge's `ca` PEM text, by bridge name (bridges without a `ca` are absent), for its dialer */
  bridgeCa: Map<string, string>;
}

export interface PrepareOptions {
  /** the channels whose providers are made (default: every channel) */
  channels?: (c: ChannelConfig) => boolean;
  /**
   * 'server' (default): the certificate and key are parsed by making the HTTPS server (`https`); 'later': they are
   * only read (`tls`) and the caller parses them once (a reload: tlsProblem), unless the file is refused here
   */
  tls?: 'server' | 'later';
}

/** The problem of `gateway.tls` when `parse` (which makes a TLS context from the certificate and key) throws. */
export function tlsProblem(parse: () => void): string | undefined {
  try {
    parse();
    return undefined;
  } catch (err) {
    return `gateway.tls: not a usable certificate and key (${(err as Error).message})`;
  }
}

/**
 * Checks `loaded` as a gateway would run it and makes the providers of the channels `opts.channels` picks.
 * Throws ConfigError listing every problem (the file's path as its source), the providers made so far closed;
 * any other error a provider throws is rethrown, after the same closing.
 */
export async function prepareConfig(loaded: LoadedConfig, opts: PrepareOptions = {}): Promise<Prepared> {
  const channels = opts.channels ?? (() => true);
  const cfg = loaded.config;
  const problems: string[] = [];
  const read = (key: string, file: string): string | undefined => {
    const path = resolvePath(loaded.baseDir, file);
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      problems.push(`${key}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      return undefined;
    }
  };
  let https: Server | undefined;
  let tls: Prepared['tls'];
  // where the certificate's problem goes in the list when it is parsed only once the rest is known ('later')
  let tlsLater: { at: number; pem: { cert: string; key: string } } | undefined;
  if (cfg.gateway.tls) {
    const cert = read('gateway.tls.cert', cfg.gateway.tls.cert);
    const key = read('gateway.tls.key', cfg.gateway.tls.key);
    if (cert !== undefined && key !== undefined) {
      if (opts.tls === 'later') {
        tls = { cert, key };
        tlsLater = { at: problems.length, pem: tls };
      } else {
        const problem = tlsProblem(() => (https = createNodeServer({ cert, key }, cfg.gateway.bodyTimeoutMs)));
        if (problem) problems.push(problem);
        else tls = { cert, key };
      }
    }
  }
  const bridgeCa = new Map<string, string>();
  cfg.gateway.bridges.forEach((b, i) => {
    const ca = b.ca ? read(`gateway.bridges.${i}.ca`, b.ca) : undefined;
    if (ca !== undefined) bridgeCa.set(b.name, ca);
  });
  const storeProblem = cfg.store.kind === 'sqlite' ? sqlitePathProblem(resolvePath(loaded.baseDir, cfg.store.path)) : redisUrlProblem(cfg.store.url);
  if (storeProblem) problems.push(`store.${cfg.store.kind === 'sqlite' ? 'path' : 'url'}: ${storeProblem}`);

  const providers = new Map<string, ChannelProvider>();
  try {
    cfg.channels.forEach((c, i) => {
      if (!channels(c)) return;
      try {
        providers.set(c.name, createProvider(c));
      } catch (err) {
        if (!(err instanceof GatewayError && err.code === 'CONFIG_INVALID')) throw err;
        problems.push(`channels.${i}.${err.param ?? 'options'}: ${err.message}`);
      }
    });
  } catch (err) {
    await closeProviders(providers.values());
    throw err;
  }
  if (problems.length > 0) {
    // refused all the same: the certificate is parsed here (once), so that its problem is listed too
    const later = tlsLater;
    const problem = later && tlsProblem(() => createSecureContext(later.pem));
    if (later && problem) problems.splice(later.at, 0, problem);
    await closeProviders(providers.values());
    throw configRefusal(cfg, problems, loaded.path ?? 'built-in defaults');
  }
  return { providers, https, tls, bridgeCa };
}

/** Closes providers no channel uses (never rejects). */
export async function closeProviders(providers: Iterable<ChannelProvider>): Promise<void> {
  await Promise.all([...providers].map((p) => p.close().catch(() => undefined)));
}
