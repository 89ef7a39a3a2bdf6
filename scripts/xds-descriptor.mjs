#!/usr/bin/env node
// Regenerates proto/isle/xds/envoy-descriptor.json from the Envoy .proto files (ADR 0105): run after
// changing PROTO_FILES in src/xds/protos.ts or updating @grpc/grpc-js-xds. Needs a build first:
//   npm run build && node scripts/xds-descriptor.mjs
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { installedProtosVersion, parseXdsProtos, xdsDescriptor, XDS_DESCRIPTOR_FILE } = await import(join(root, 'dist', 'src', 'xds', 'protos.js'));
const file = join(root, 'proto', XDS_DESCRIPTOR_FILE);
mkdirSync(dirname(file), { recursive: true });
writeFileSync(file, JSON.stringify(xdsDescriptor(parseXdsProtos(), installedProtosVersion()), null, 1) + '\n');
console.log(`wrote ${file}`);
