/**
 * The bridged pair of gateway processes the graceful-stop tests stop one side of: B ("datacenter") shares its
 * `gpu` channel (mock model `llama-gpu`) with A ("office", one mock channel of its own), which dials B and shares
 * nothing; both admin APIs take `admin`.
 */
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { adminGet, startProcess, waitFor, wsUrl } from './env.js';

export interface SharingPairOptions {
  /** ids `gw_<prefix>a` and `gw_<prefix>b` */
  prefix: string;
  /** the bridge token A dials B with */
  token: string;
  admin: string;
  /** B's `gateway.shutdownGraceMs` */
  shutdownGraceMs: number;
  /** the mock options of B's `gpu` channel (its stream's pace and length) */
  gpu: Record<string, unknown>;
  /** B's channels before `gpu` */
  bChannels?: Array<Record<string, unknown>>;
  /** B's `acp` section */
  bAcp?: Record<string, unknown>;
}

/** Starts B, then A dialled to it; resolves once A lists B's model. A start that fails stops B. */
export async function startSharingPair(o: SharingPairOptions): Promise<{ a: GatewayProcess; b: GatewayProcess & { dir: string } }> {
  const b = await startProcess({
    gateway: {
      id: `gw_${o.prefix}b`,
      name: 'datacenter',
      admin: { token: o.admin },
      shutdownGraceMs: o.shutdownGraceMs,
      bridge: { enabled: true, allowedTokens: [o.token], shareChannels: ['gpu'] },
    },
    channels: [...(o.bChannels ?? []), { name: 'gpu', provider: 'mock', models: ['llama-gpu'], options: o.gpu }],
    ...(o.bAcp ? { acp: o.bAcp } : {}),
  });
  let a: GatewayProcess | undefined;
  try {
    a = await startProcess({
      gateway: {
        id: `gw_${o.prefix}a`,
        name: 'office',
        admin: { token: o.admin },
        bridges: [{ name: 'datacenter', url: wsUrl(b.url), token: o.token, shareChannels: false, reconnectInterval: 200 }],
      },
      channels: [{ name: 'office-mock', provider: 'mock', models: ['mock-1'] }],
    });
    const onA = a;
    await waitFor(async () => (await adminGet(onA.url, '/admin/status', o.admin)).models.includes('llama-gpu'), "A sees B's model");
    return { a, b };
  } catch (err) {
    await Promise.all([a?.stop(), b.stop()]);
    throw err;
  }
}

/** The exit code of a gateway process once it has exited (at once if it already has). */
export function exitCodeOf(g: GatewayProcess): Promise<number | null> {
  return new Promise((resolve) => (g.proc.exitCode !== null ? resolve(g.proc.exitCode) : g.proc.once('exit', (c) => resolve(c))));
}

/** The process's exit code, or `undefined` if it is still running after `ms` (then its stop hung). */
export const exitWithin = (g: GatewayProcess, ms: number): Promise<number | null | undefined> =>
  Promise.race([exitCodeOf(g), new Promise<undefined>((r) => setTimeout(() => r(undefined), ms).unref())]);
