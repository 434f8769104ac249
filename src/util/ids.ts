import { randomBytes, randomUUID } from 'node:crypto';

/** short random id with a prefix: `req_3f9a…` */
export function newId(prefix: string, bytes = 12): string {
  return `${prefix}_${randomBytes(bytes).toString('hex')}`;
}

export function uuid(): string {
  return randomUUID();
}
