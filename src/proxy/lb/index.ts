export { ClusterLoadBalancer, type EjectionSource, type LbOptions, type LbSettings, type PickOptions, type PickResult, type HostHealth } from './balancer.js';
export { computePriorityLoad, type LevelCounts, type PriorityLoad } from './priority.js';
export { EdfScheduler } from './edf.js';
export { seededRandom, type Random } from './random.js';
