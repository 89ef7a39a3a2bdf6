/** A running demo: what the demo and its scenarios share about the processes they started. */
import type { IssuingCa } from '../pki/index.js';
import type { DemoTopology } from './topology.js';
import type { Managed, Supervisor } from './supervisor.js';

export interface Running {
  topo: DemoTopology;
  dir: string;
  sup: Supervisor;
  appAddress: Map<string, string>;
  cas: Map<string, IssuingCa>;
  rootCert: string;
  logLevel: string;
  /** Processes a scenario stopped on purpose (not reported as unexpected exits). */
  expectedExits?: Set<Managed>;
}
