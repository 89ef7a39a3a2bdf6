/** The control plane: the process (`ControlPlane`), its push pipeline, auth, debug server and metrics. */
export { ControlPlane, DEFAULT_DEBUG_LISTEN, DEFAULT_LISTEN, parseListenAddress, type BoundAddresses, type ControlPlaneOptions } from './controlplane.js';
export { Pusher, PUSH_KINDS, type PushRecord, type PusherOptions } from './pusher.js';
export { DebugServer, syncz, type DebugSources, type SynczEntry } from './debugserver.js';
export { ControlPlaneMetrics } from './metrics.js';
export { xdsAuthenticator, proxyFromNodeInfo, type AuthOptions, type XdsAuthenticator } from './auth.js';
