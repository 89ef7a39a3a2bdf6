/**
 * Auto-allocated VIPs (Istio's DNS auto-allocation, ADR 0075): a service without an address — a
 * ServiceEntry without `addresses`, or a Service without a cluster IP in universal mode — gets one
 * from 240.240.0.0/16 (class E, never routed on the Internet), so the sidecar's DNS proxy has an
 * address to answer and outbound routing can tell the service by the address a client dials.
 *
 * Deterministic for a given set of services, on every control plane that sees that set: the
 * slot is an FNV-1a hash of the host name; collisions probe linearly, in host-name order of the
 * colliding services, so the same set always gets the same addresses. Adding a service moves
 * another one only if both hash to the same slot (1 in 65,534 per pair).
 */
import type { Service } from '../registry/model.js';

export const AUTO_VIP_PREFIX = '240.240.';
/** Usable slots: 240.240.0.1 … 240.240.255.254 (the network and broadcast forms are skipped). */
const SLOTS = 65534;

/** FNV-1a, 32 bits, over the UTF-16 code units (host names are ASCII). */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function slotAddress(slot: number): string {
  const n = slot + 1;
  return `${AUTO_VIP_PREFIX}${n >> 8}.${n & 255}`;
}

/** Whether a service is given an auto VIP: no address, a concrete host, something to resolve. */
export function wantsAutoVip(svc: Service): boolean {
  if (svc.addresses.length > 0 || svc.hostname.includes('*')) return false;
  // Headless Services and ServiceEntries with resolution NONE pass traffic through to what the
  // client dialled: there is no service address to stand for.
  return svc.resolution !== 'NONE';
}

/**
 * hostname → VIP for the services that want one (see wantsAutoVip). Addresses some service
 * already has are never handed out.
 */
export function allocateAutoVips(services: readonly Service[]): Map<string, string> {
  const taken = new Set<number>();
  for (const s of services) {
    for (const a of s.addresses) {
      if (!a.startsWith(AUTO_VIP_PREFIX)) continue;
      const [x, y] = a.slice(AUTO_VIP_PREFIX.length).split('.').map(Number);
      if (x !== undefined && y !== undefined) taken.add(((x << 8) | y) - 1);
    }
  }
  const wanting = services
    .filter(wantsAutoVip)
    .map((s) => ({ host: s.hostname, slot: fnv1a32(s.hostname) % SLOTS }))
    .sort((a, b) => a.slot - b.slot || (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
  const out = new Map<string, string>();
  for (const w of wanting) {
    if (out.has(w.host)) continue;
    let slot = w.slot;
    for (let i = 0; i < SLOTS && taken.has(slot); i++) slot = (slot + 1) % SLOTS;
    if (taken.has(slot)) break; // all 65,534 taken: the rest stay without a VIP
    taken.add(slot);
    out.set(w.host, slotAddress(slot));
  }
  return out;
}
