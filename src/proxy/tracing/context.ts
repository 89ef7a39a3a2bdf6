/**
 * Trace context on the wire (ADR 0085): W3C `traceparent`/`tracestate`, B3 single (`b3`) and B3
 * multi-header (`x-b3-*`). Pure functions: parsing never throws — a malformed header is as if it
 * were absent (a new trace starts), as the W3C spec and Envoy both do.
 */
import { randomFillSync } from 'node:crypto';
import type { Headers } from '../http1/head.js';

/** The context a request arrived with (or none). */
export interface IncomingContext {
  /** 32 lower-case hex digits (a 64-bit B3 id is left-padded with zeros). */
  readonly traceId: string;
  /** The caller's span: our span's parent. 16 hex digits. */
  readonly parentSpanId: string;
  /** The caller's decision; undefined: none was made (B3 without a sampling state), we decide. */
  readonly sampled: boolean | undefined;
  readonly traceState: string | undefined;
  /** Which B3 form came in, so the same form goes out with our span (W3C always goes out). */
  readonly b3: 'single' | 'multi' | undefined;
  /** A 64-bit B3 trace id is sent on as it came (16 digits). */
  readonly b3TraceId64: boolean;
}

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const ZERO32 = '0'.repeat(32);
const ZERO16 = '0'.repeat(16);

function one(h: Headers, name: string): string | undefined {
  const v = h[name];
  return typeof v === 'string' ? v : undefined;
}

/** W3C Trace Context level 1: `00-<trace-id>-<parent-id>-<flags>`; future versions may add fields. */
export function parseTraceparent(v: string | undefined): { traceId: string; spanId: string; sampled: boolean } | undefined {
  if (v === undefined) return undefined;
  const s = v.trim();
  if (s.length < 55) return undefined;
  const version = s.slice(0, 2);
  if (!/^[0-9a-f]{2}$/.test(version) || version === 'ff') return undefined;
  if (version === '00' && s.length !== 55) return undefined;
  if (s[2] !== '-' || s[35] !== '-' || s[52] !== '-' || (s.length > 55 && s[55] !== '-')) return undefined;
  const traceId = s.slice(3, 35);
  const spanId = s.slice(36, 52);
  const flags = s.slice(53, 55);
  if (!HEX32.test(traceId) || traceId === ZERO32 || !HEX16.test(spanId) || spanId === ZERO16 || !/^[0-9a-f]{2}$/.test(flags)) return undefined;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1 };
}

function b3TraceId(v: string | undefined): { id: string; short: boolean } | undefined {
  if (v === undefined) return undefined;
  const s = v.toLowerCase();
  if (HEX32.test(s) && s !== ZERO32) return { id: s, short: false };
  if (HEX16.test(s) && s !== ZERO16) return { id: ZERO16 + s, short: true };
  return undefined;
}

function b3Sampled(v: string | undefined): boolean | undefined | null {
  if (v === undefined || v === '') return undefined;
  if (v === '1' || v === 'd' || v === 'true') return true;
  if (v === '0' || v === 'false') return false;
  return null; // malformed
}

/** `b3: {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]`; a bare sampling state has no context. */
function parseB3Single(v: string): IncomingContext | undefined {
  const parts = v.trim().split('-');
  if (parts.length < 2 || parts.length > 4) return undefined;
  const t = b3TraceId(parts[0]);
  const span = parts[1]!.toLowerCase();
  const sampled = b3Sampled(parts[2]);
  if (!t || !HEX16.test(span) || span === ZERO16 || sampled === null) return undefined;
  if (parts[3] !== undefined && !HEX16.test(parts[3].toLowerCase())) return undefined;
  return { traceId: t.id, parentSpanId: span, sampled, traceState: undefined, b3: 'single', b3TraceId64: t.short };
}

function parseB3Multi(h: Headers): IncomingContext | undefined {
  const t = b3TraceId(one(h, 'x-b3-traceid'));
  const span = one(h, 'x-b3-spanid')?.toLowerCase();
  if (!t || span === undefined || !HEX16.test(span) || span === ZERO16) return undefined;
  const debug = one(h, 'x-b3-flags') === '1';
  const sampled = debug ? true : b3Sampled(one(h, 'x-b3-sampled'));
  if (sampled === null) return undefined;
  return { traceId: t.id, parentSpanId: span, sampled, traceState: undefined, b3: 'multi', b3TraceId64: t.short };
}

/** The incoming context: W3C first, then B3 single, then B3 multi; malformed ones are skipped. */
export function extractContext(h: Headers): IncomingContext | undefined {
  const tp = parseTraceparent(one(h, 'traceparent'));
  if (tp) {
    const ts = h['tracestate'];
    // Several tracestate fields are one list (W3C: combine them in order).
    const traceState = typeof ts === 'string' ? ts : Array.isArray(ts) ? ts.join(',') : undefined;
    const b3 = h['b3'] !== undefined ? 'single' : h['x-b3-traceid'] !== undefined ? 'multi' : undefined;
    // B3 alongside (a previous hop wrote both): keep its id width for apps that read only B3.
    const b3Id = b3 === 'single' ? one(h, 'b3')?.split('-')[0] : b3 === 'multi' ? one(h, 'x-b3-traceid') : undefined;
    const b3TraceId64 = b3Id?.length === 16 && tp.traceId.startsWith(ZERO16);
    return { traceId: tp.traceId, parentSpanId: tp.spanId, sampled: tp.sampled, traceState, b3, b3TraceId64 };
  }
  const single = one(h, 'b3');
  if (single !== undefined) {
    const c = parseB3Single(single);
    if (c) return c;
  }
  return parseB3Multi(h);
}

/** A bare B3 sampling decision (`b3: 0`, `x-b3-sampled: 0` without ids) still binds the decision. */
export function bareSamplingDecision(h: Headers): boolean | undefined {
  const single = one(h, 'b3');
  if (single !== undefined && /^[01d]$/.test(single.trim())) return single.trim() !== '0';
  if (h['x-b3-traceid'] === undefined) {
    const s = b3Sampled(one(h, 'x-b3-sampled'));
    if (s !== null && s !== undefined) return s;
  }
  return undefined;
}

/** The span this proxy made for the request: what goes downstream as the new parent. */
export interface OutgoingContext {
  readonly traceId: string;
  readonly spanId: string;
  readonly sampled: boolean;
}

/** Writes our span as the parent of the next hop, in W3C and in the B3 form that came in. */
export function injectContext(h: Headers, out: OutgoingContext, incoming: IncomingContext | undefined): void {
  h['traceparent'] = `00-${out.traceId}-${out.spanId}-${out.sampled ? '01' : '00'}`;
  if (incoming?.traceState !== undefined) h['tracestate'] = incoming.traceState;
  else delete h['tracestate'];
  const b3 = incoming?.b3;
  if (!b3) return;
  const traceId = incoming.b3TraceId64 ? out.traceId.slice(16) : out.traceId;
  const flag = out.sampled ? '1' : '0';
  if (b3 === 'single') {
    h['b3'] = `${traceId}-${out.spanId}-${flag}-${incoming.parentSpanId}`;
    return;
  }
  h['x-b3-traceid'] = traceId;
  h['x-b3-spanid'] = out.spanId;
  h['x-b3-parentspanid'] = incoming.parentSpanId;
  h['x-b3-sampled'] = flag;
  delete h['x-b3-flags'];
}

/**
 * Random ids from a pooled buffer: one `randomFill` per 256 ids instead of one syscall-backed call
 * per id (a span id is needed for every request, sampled or not).
 */
const UUID = Buffer.allocUnsafe(36);
const HEX = Buffer.from('0123456789abcdef', 'latin1');

export class IdSource {
  private readonly pool = Buffer.allocUnsafe(4096);
  private off = 4096;

  constructor(private readonly fill: (b: Buffer) => void = (b) => void randomFillSync(b)) {}

  private hex(n: number): string {
    for (;;) {
      if (this.off + n > this.pool.length) {
        this.fill(this.pool);
        this.off = 0;
      }
      const s = this.pool.toString('hex', this.off, this.off + n);
      this.off += n;
      // All-zero ids are invalid in W3C and B3.
      if (!/^0+$/.test(s)) return s;
    }
  }

  spanId(): string {
    return this.hex(8);
  }

  /**
   * A random (version 4) UUID as `crypto.randomUUID` makes them, from the same pool, built as one
   * flat string: `randomUUID` concatenates 36 characters a pair at a time (≈ 20 cons strings per
   * id, the largest single allocation of a client sidecar's request; ADR 0143). `x-request-id`.
   */
  uuid(): string {
    if (this.off + 16 > this.pool.length) {
      this.fill(this.pool);
      this.off = 0;
    }
    const p = this.pool;
    const at = this.off;
    this.off += 16;
    let o = 0;
    for (let i = 0; i < 16; i++) {
      let b = p[at + i]!;
      if (i === 6) b = (b & 0x0f) | 0x40; // version 4
      else if (i === 8) b = (b & 0x3f) | 0x80; // RFC 9562 variant
      UUID[o++] = HEX[b >> 4]!;
      UUID[o++] = HEX[b & 15]!;
      if (i === 3 || i === 5 || i === 7 || i === 9) UUID[o++] = 45; // '-'
    }
    return UUID.toString('latin1', 0, 36);
  }

  traceId(): string {
    return this.hex(16);
  }
}
