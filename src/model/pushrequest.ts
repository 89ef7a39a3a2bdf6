/**
 * What a push is asked to do, as Istio's model.PushRequest: full or incremental, why, which config
 * changed and which hosts' endpoints changed. One type travels the whole pipeline: config and
 * registry changes become PushRequests, the debouncer merges them, the push queue merges what is
 * pending per proxy, and generation reads the merged request to pick the xDS types to regenerate.
 */
import type { Kind } from '../config/types.js';

export type PushReason = 'connect' | 'endpoints' | 'services' | 'config' | 'gateways' | 'mesh' | 'settled';

export interface PushRequestInit {
  full: boolean;
  reasons: Iterable<PushReason>;
  /** Kinds of config that changed (Istio's ConfigsUpdated, by kind). */
  configKinds?: Iterable<Kind>;
  /** Hostnames whose endpoints changed: what an incremental (EDS-only) push regenerates. */
  hosts?: Iterable<string>;
  /** An incremental push that also changes CDS (a host's set of SPIFFE identities moved). */
  cds?: boolean;
  /**
   * An incremental push that also changes captured sidecars' LDS: a host's endpoint addresses
   * moved, and the outbound chains of a service without a VIP match its endpoints' addresses.
   */
  lds?: boolean;
  /** When the earliest change was seen (timers.now()); undefined for a connect. */
  start?: number;
  /**
   * Every xDS type must be regenerated: a connect, a services/mesh/gateways change, or a config
   * push that does not say which kinds changed. Derived when not given; kept through merges, so
   * a scoped config push merged with an unscoped one is unscoped (generate/affected.ts).
   */
  allTypes?: boolean;
}

export class PushRequest {
  readonly full: boolean;
  readonly reasons: ReadonlySet<PushReason>;
  readonly configKinds: ReadonlySet<Kind>;
  readonly hosts: ReadonlySet<string>;
  readonly cds: boolean;
  readonly lds: boolean;
  readonly start: number | undefined;
  readonly allTypes: boolean;

  constructor(init: PushRequestInit) {
    this.full = init.full;
    this.reasons = new Set(init.reasons);
    this.configKinds = new Set(init.configKinds ?? []);
    this.hosts = new Set(init.hosts ?? []);
    this.cds = init.full || (init.cds ?? false);
    this.lds = init.full || (init.lds ?? false);
    this.start = init.start;
    this.allTypes =
      init.allTypes ??
      (this.full && ([...this.reasons].some((r) => r !== 'config' && r !== 'endpoints') || (this.reasons.has('config') && this.configKinds.size === 0)));
    Object.freeze(this);
  }

  /**
   * Both requests in one: full wins, reasons/kinds/hosts are unioned, the earliest start is kept
   * (convergence is measured from the first change a proxy waited for). Pure: neither side changes.
   */
  merge(other: PushRequest): PushRequest {
    const starts = [this.start, other.start].filter((x): x is number => x !== undefined);
    return new PushRequest({
      full: this.full || other.full,
      reasons: union(this.reasons, other.reasons),
      configKinds: union(this.configKinds, other.configKinds),
      hosts: union(this.hosts, other.hosts),
      cds: this.cds || other.cds,
      lds: this.lds || other.lds,
      allTypes: this.allTypes || other.allTypes,
      ...(starts.length > 0 ? { start: Math.min(...starts) } : {}),
    });
  }

  /** The one reason metrics and logs show: the broadest cause in the request. */
  get reason(): PushReason {
    for (const r of REASON_ORDER) if (this.reasons.has(r)) return r;
    return 'endpoints';
  }
}

/** Broadest first. */
const REASON_ORDER: readonly PushReason[] = ['connect', 'settled', 'config', 'mesh', 'services', 'gateways', 'endpoints'];

function union<T>(a: ReadonlySet<T>, b: ReadonlySet<T>): Set<T> {
  if (b.size === 0) return new Set(a);
  const out = new Set(a);
  for (const x of b) out.add(x);
  return out;
}

/** A proxy that just connected: every type, from the current PushContext. */
export const CONNECT_REQUEST = new PushRequest({ full: true, reasons: ['connect'] });
