/**
 * A WebSocket text message as a string, whatever shape `ws` delivered it in (a Buffer by default, an array of
 * fragments, or an ArrayBuffer with `binaryType: 'arraybuffer'`).
 */
export type RawWsData = Buffer | ArrayBuffer | Buffer[];

export function wsText(data: RawWsData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}
