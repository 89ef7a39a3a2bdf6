/**
 * NDS (Istio's NameTable) and the auto-allocated VIPs it and the routes use.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generateRoutes, nameTable, nameTableGroups } from '../../src/generate/index.js';
import { allocateAutoVips, fnv1a32 } from '../../src/model/autovip.js';
import { NAME_TABLE_TYPE } from '../../src/mesh/typeurls.js';
import { decodeNameTable } from '../../src/proxy/decode/nametable.js';
import { assertGolden } from './golden.js';
import { eastWestGateway, extDns, extStatic, push, sleepSidecar, svc } from './fixtures.js';

describe('auto VIPs (240.240.0.0/16)', () => {
  it('a service without an address gets one; one with an address, a wildcard host or resolution NONE does not', () => {
    const p = push({
      services: [
        extStatic,
        extDns,
        svc('wild', 'sample', [], { hostname: '*.wild.example', kind: 'ServiceEntry', resolution: 'DNS' }),
        svc('passthrough', 'sample', [], { hostname: 'pass.example', kind: 'ServiceEntry', resolution: 'NONE' }),
      ],
    });
    assert.deepEqual([...p.autoVips.keys()], ['httpbin.org']);
    assert.match(p.autoVips.get('httpbin.org')!, /^240\.240\.\d+\.\d+$/);
    assert.deepEqual(p.servicesByHost.get('httpbin.org')!.addresses, [p.autoVips.get('httpbin.org')]);
    assert.deepEqual(p.servicesByHost.get('api.partner.example')!.addresses, ['240.0.0.10']);
  });

  it('deterministic: the same services give the same VIPs whatever their order; the slot is the FNV-1a hash of the host', () => {
    const a = push().autoVips;
    const b = push({ services: [...push().services].reverse().map((s) => ({ ...s, addresses: s.addresses.filter((x) => !x.startsWith('240.240.')) })) }).autoVips;
    assert.deepEqual([...a].sort(), [...b].sort());
    const slot = (fnv1a32('httpbin.org') % 65534) + 1;
    assert.equal(a.get('httpbin.org'), `240.240.${slot >> 8}.${slot & 255}`);
  });

  it('collisions probe to the next free slot, and addresses already taken are never handed out', () => {
    // Two hosts with the same slot: find a pair by brute force over a small namespace of names.
    const bySlot = new Map<number, string>();
    let pair: [string, string] | undefined;
    for (let i = 0; !pair; i++) {
      const h = `h${i}.example`;
      const s = fnv1a32(h) % 65534;
      const other = bySlot.get(s);
      if (other) pair = [other, h];
      else bySlot.set(s, h);
    }
    const mk = (h: string, addresses: string[] = []) => svc(h, 'x', [], { hostname: h, kind: 'ServiceEntry', resolution: 'DNS', addresses });
    const vips = allocateAutoVips([mk(pair[0]), mk(pair[1])]);
    assert.equal(new Set(vips.values()).size, 2);
    const taken = vips.get(pair[0] < pair[1] ? pair[0] : pair[1])!;
    const again = allocateAutoVips([mk('holder.example', [taken]), mk(pair[0]), mk(pair[1])]);
    assert.ok(![...again.values()].includes(taken));
    assert.equal(again.size, 2);
  });

  it('routes: the VIP is a domain of the service, with and without the port, so a request to it is routed like one to its name', () => {
    const p = push();
    const vip = p.autoVips.get('httpbin.org')!;
    const rds = generateRoutes(p, sleepSidecar(p));
    const vh = (rds[0]!['virtual_hosts'] as { name: string; domains: string[] }[]).find((v) => v.name === 'httpbin.org:80')!;
    assert.ok(vh.domains.includes(`${vip}:80`) && vh.domains.includes(vip), vh.domains.join(' '));
  });
});

describe('NDS name table', () => {
  it('every service with an address, Kubernetes ones with short name and namespace (golden); the proxy decoder accepts it', () => {
    const p = push();
    const t = nameTable(p);
    assertGolden('nds-sidecar', NAME_TABLE_TYPE, [t]);
    const table = t['table'] as Record<string, { ips: string[]; registry: string; shortname?: string }>;
    assert.deepEqual(table['api.partner.example'], { ips: ['240.0.0.10'], registry: 'External' });
    assert.equal(table['helloworld.sample.svc.cluster.local']!.shortname, 'helloworld');
    assert.deepEqual(table['httpbin.org']!.ips, [p.autoVips.get('httpbin.org')]);
    const d = decodeNameTable(t);
    assert.ok('ok' in d, JSON.stringify(d));
    assert.equal(d.ok.size, Object.keys(table).length);
  });

  it('one shared resource for all sidecars; nothing for gateways', () => {
    const p = push();
    const g = nameTableGroups(p, sleepSidecar(p));
    assert.equal(g.length, 1);
    assert.equal(g[0]!.shareKey, 'nds');
    assert.deepEqual(nameTableGroups(p, eastWestGateway(p)), []);
  });

  it('seed 003: helloworld.hello.global → the ServiceEntry address', () => {
    const global = svc('helloworld-global', 'hello', [{ name: 'http1', port: 5000, targetPort: 5000, protocol: 'HTTP' }], {
      hostname: 'helloworld.hello.global',
      kind: 'ServiceEntry',
      resolution: 'DNS',
      addresses: ['127.255.0.8'],
    });
    // A host the proxy's decoder would refuse is left out rather than costing every sidecar its table.
    const odd = svc('odd', 'hello', [], { hostname: `${'x'.repeat(64)}.example`, kind: 'ServiceEntry', resolution: 'DNS', addresses: ['10.0.0.9'] });
    const t = nameTable(push({ services: [global, odd] }));
    assert.deepEqual(t, { table: { 'helloworld.hello.global': { ips: ['127.255.0.8'], registry: 'External' } } });
  });
});

describe('NDS decoder (the proxy side): every problem named, the table refused whole', () => {
  it('bad hosts, addresses and Kubernetes entries', () => {
    const r = decodeNameTable({
      table: {
        'Upper.Case': { ips: ['10.0.0.1'], registry: 'External' },
        'trailing.dot.': { ips: ['10.0.0.1'] },
        'no.ips': { ips: [] },
        'bad.ip': { ips: ['10.0.0.256', 'fe80::zz'] },
        'x.y.svc.cluster.local': { ips: ['10.0.0.1'], registry: 'Kubernetes', shortname: 'other', namespace: 'y' },
        'ok.example': { ips: ['10.0.0.1'] },
      },
    });
    assert.ok('errors' in r);
    const text = r.errors.join('\n');
    for (const want of ['"Upper.Case"', '"trailing.dot."', '"no.ips"].ips', '"bad.ip"].ips[0]', '"bad.ip"].ips[1]', '<shortname>.<namespace>.svc']) {
      assert.ok(text.includes(want), `${want} in\n${text}`);
    }
    assert.ok(!text.includes('ok.example'));
    assert.ok('errors' in decodeNameTable({ table: [] }));
    assert.ok('errors' in decodeNameTable('x'));
    assert.deepEqual(decodeNameTable({}), { ok: new Map() });
  });
});
