/**
 * A minimal OTLP/HTTP trace receiver for tests: POST /v1/traces with an ExportTraceServiceRequest
 * in protobuf. No collector binary is available here (Debian 12 packages neither `otelcol` nor
 * Jaeger), and the installed otlp-transformer ships only an encoder, no .proto files; so the
 * messages are declared below from opentelemetry-proto's trace.proto (field numbers as published)
 * and decoded with protobufjs: an independent decoder of what the proxy's encoder wrote.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import protobuf from 'protobufjs';

const OTLP_PROTO = `
syntax = "proto3";
package opentelemetry.proto;
message AnyValue { oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; bytes bytes_value = 7; } }
message KeyValue { string key = 1; AnyValue value = 2; }
message Resource { repeated KeyValue attributes = 1; uint32 dropped_attributes_count = 2; }
message InstrumentationScope { string name = 1; string version = 2; repeated KeyValue attributes = 3; uint32 dropped_attributes_count = 4; }
message Status { string message = 2; int32 code = 3; }
message Span {
  bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; bytes parent_span_id = 4; fixed32 flags = 16;
  string name = 5; int32 kind = 6; fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9; uint32 dropped_attributes_count = 10; Status status = 15;
}
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; string schema_url = 3; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; string schema_url = 3; }
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
`;

const Request = protobuf.parse(OTLP_PROTO, { keepCase: true }).root.lookupType('opentelemetry.proto.ExportTraceServiceRequest');

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind: 2 SERVER, 3 CLIENT. */
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, string | number | boolean>;
  statusCode: number;
  service: string;
}

interface Kv {
  key: string;
  value?: { string_value?: string; bool_value?: boolean; int_value?: number | { toString(): string }; double_value?: number };
}

function attrs(list: Kv[] | undefined): Record<string, string | number | boolean> {
  const o: Record<string, string | number | boolean> = {};
  for (const kv of list ?? []) {
    const v = kv.value ?? {};
    o[kv.key] = v.string_value ?? v.bool_value ?? (v.int_value !== undefined ? Number(String(v.int_value)) : v.double_value ?? '');
  }
  return o;
}

const hex = (b: Uint8Array | undefined): string => (b ? Buffer.from(b).toString('hex') : '');

/** Decodes one ExportTraceServiceRequest body into flat spans. */
export function decodeExport(body: Uint8Array): ReceivedSpan[] {
  const msg = Request.toObject(Request.decode(body), { longs: String, bytes: Buffer, defaults: false }) as {
    resource_spans?: { resource?: { attributes?: Kv[] }; scope_spans?: { spans?: Record<string, unknown>[] }[] }[];
  };
  const out: ReceivedSpan[] = [];
  for (const rs of msg.resource_spans ?? []) {
    const service = String(attrs(rs.resource?.attributes)['service.name'] ?? '');
    for (const ss of rs.scope_spans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: hex(s['trace_id'] as Uint8Array),
          spanId: hex(s['span_id'] as Uint8Array),
          parentSpanId: hex(s['parent_span_id'] as Uint8Array | undefined),
          name: String(s['name'] ?? ''),
          kind: Number(s['kind'] ?? 0),
          startNs: BigInt(String(s['start_time_unix_nano'] ?? '0')),
          endNs: BigInt(String(s['end_time_unix_nano'] ?? '0')),
          attributes: attrs(s['attributes'] as Kv[] | undefined),
          statusCode: Number((s['status'] as { code?: number } | undefined)?.code ?? 0),
          service,
        });
      }
    }
  }
  return out;
}

export interface OtlpReceiver {
  readonly url: string;
  readonly spans: ReceivedSpan[];
  /** Bodies that were not a protobuf export (content type or decode failure). */
  readonly rejected: string[];
  close(): Promise<void>;
}

export async function startOtlpReceiver(host: string, port = 0): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const rejected: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces' || req.headers['content-type'] !== 'application/x-protobuf') {
        rejected.push(`${req.method} ${req.url} ${req.headers['content-type']}`);
        res.writeHead(415).end();
        return;
      }
      try {
        spans.push(...decodeExport(Buffer.concat(chunks)));
      } catch (e) {
        rejected.push(String(e));
        res.writeHead(400).end();
        return;
      }
      // An empty ExportTraceServiceResponse.
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((r) => server.listen(port, host, r));
  const a = server.address() as AddressInfo;
  return {
    url: `http://${host}:${a.port}`,
    spans,
    rejected,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
