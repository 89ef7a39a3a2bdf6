/** The traffic-policy scenarios of `isle demo --scenario NAME`; catalog.ts lists the registered ones. */
import { IsleError } from '../../errors.js';
import { SCENARIO_CATALOG } from './catalog.js';
import type { Scenario } from './common.js';
import { authz } from './authz.js';
import { distribute } from './distribute.js';
import { failover } from './failover.js';
import { routing } from './routing.js';
import { remoteControlPlane } from './remote-control-plane.js';
import { strictMtls } from './strict-mtls.js';

const ALL: Scenario[] = [strictMtls, routing, distribute, failover, remoteControlPlane, authz];

export function scenarioByName(name: string): Scenario {
  const s = ALL.find((x) => x.name === name);
  // Only registered (catalogued) scenarios run.
  if (!s || !(name in SCENARIO_CATALOG)) throw new IsleError('ERR_USAGE', `unknown scenario ${JSON.stringify(name)}`);
  return s;
}
