/** The ADS gRPC service definition for grpc-js (server and clients). */
import type * as grpc from '@grpc/grpc-js';
import { decodeMessage, encodeMessage } from './codec.js';
import { serializeResponse } from './preencoded.js';
import { decodeSotwRequest } from './sotwrequest.js';
import {
  messageType,
  xdsRoot,
  type DeltaDiscoveryRequestMsg,
  type DeltaDiscoveryResponseMsg,
  type DiscoveryRequestMsg,
  type DiscoveryResponseMsg,
} from './protos.js';

export const ADS_SERVICE = 'envoy.service.discovery.v3.AggregatedDiscoveryService';
export const SOTW_METHOD = 'StreamAggregatedResources';
export const DELTA_METHOD = 'DeltaAggregatedResources';

export interface AdsServiceDefinition extends grpc.ServiceDefinition {
  StreamAggregatedResources: grpc.MethodDefinition<DiscoveryRequestMsg, DiscoveryResponseMsg>;
  DeltaAggregatedResources: grpc.MethodDefinition<DeltaDiscoveryRequestMsg, DeltaDiscoveryResponseMsg>;
}

let cachedAds: AdsServiceDefinition | undefined;

/**
 * The ADS service for grpc-js, built by hand rather than with proto-loader so that responses
 * carry pre-serialized `Any` bytes straight from the cache, and bodies the server pre-encoded once
 * for many proxies (preencoded.ts) are appended as they are; requests are decoded with the validating codec.
 * The same definition serves the server and Isle's own clients.
 */
export function adsServiceDefinition(): AdsServiceDefinition {
  if (cachedAds) return cachedAds;
  const root = xdsRoot();
  const service = root.lookupService(ADS_SERVICE);
  const sotw = service.methods[SOTW_METHOD];
  const delta = service.methods[DELTA_METHOD];
  if (!sotw || !delta) throw new Error(`${ADS_SERVICE} is missing its methods`);
  const pkg = 'envoy.service.discovery.v3.';
  const resp = messageType(pkg + 'DiscoveryResponse');
  const deltaResp = messageType(pkg + 'DeltaDiscoveryResponse');
  // bytes stay Buffers: clients hand them to decodeResource or compare them as they are.
  const toObj = { defaults: true, longs: String, enums: String, arrays: true } as const;
  cachedAds = {
    StreamAggregatedResources: {
      path: `/${ADS_SERVICE}/${SOTW_METHOD}`,
      requestStream: true,
      responseStream: true,
      originalName: SOTW_METHOD,
      requestSerialize: (m: DiscoveryRequestMsg) => encodeMessage(pkg + 'DiscoveryRequest', m),
      // Names fingerprinted, decoded when read: a SotW ACK repeats the whole subscription.
      requestDeserialize: (b: Buffer) => decodeSotwRequest(b),
      responseSerialize: (m: DiscoveryResponseMsg) => serializeResponse('sotw', m),
      responseDeserialize: (b: Buffer) => resp.toObject(resp.decode(b), toObj) as DiscoveryResponseMsg,
    },
    DeltaAggregatedResources: {
      path: `/${ADS_SERVICE}/${DELTA_METHOD}`,
      requestStream: true,
      responseStream: true,
      originalName: DELTA_METHOD,
      requestSerialize: (m: DeltaDiscoveryRequestMsg) => encodeMessage(pkg + 'DeltaDiscoveryRequest', m),
      requestDeserialize: (b: Buffer) =>
        decodeMessage(pkg + 'DeltaDiscoveryRequest', b) as DeltaDiscoveryRequestMsg,
      responseSerialize: (m: DeltaDiscoveryResponseMsg) => serializeResponse('delta', m),
      responseDeserialize: (b: Buffer) =>
        deltaResp.toObject(deltaResp.decode(b), toObj) as DeltaDiscoveryResponseMsg,
    },
  };
  return cachedAds;
}
