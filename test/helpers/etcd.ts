/** Real etcd on loopback for tests (not a test file): the benchmark's helper, stopped when the test file ends. */
import { after } from 'node:test';
import { stopAllEtcd } from '../../bench/lib/etcd.js';

export { startEtcd, type EtcdCluster, type EtcdMember } from '../../bench/lib/etcd.js';

after(stopAllEtcd);
