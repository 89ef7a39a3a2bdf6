/**
 * `x-request-id` values: random (version 4) UUIDs as `crypto.randomUUID` makes them, from the same
 * CSPRNG, but built as one flat string. `randomUUID` concatenates 36 characters one pair at a time:
 * ≈ 20 cons strings per id, the largest single allocation of a client sidecar's request (ADR 0143).
 */
import { randomFillSync } from 'node:crypto';

const POOL = Buffer.allocUnsafe(16 * 256);
let at = POOL.length;
const OUT = Buffer.allocUnsafe(36);
const HEX = Buffer.from('0123456789abcdef', 'latin1');

export function requestId(): string {
  if (at === POOL.length) {
    randomFillSync(POOL);
    at = 0;
  }
  let o = 0;
  for (let i = 0; i < 16; i++) {
    let b = POOL[at + i]!;
    if (i === 6) b = (b & 0x0f) | 0x40; // version 4
    else if (i === 8) b = (b & 0x3f) | 0x80; // RFC 4122 variant
    OUT[o++] = HEX[b >> 4]!;
    OUT[o++] = HEX[b & 15]!;
    if (i === 3 || i === 5 || i === 7 || i === 9) OUT[o++] = 45; // '-'
  }
  at += 16;
  return OUT.toString('latin1', 0, 36);
}
