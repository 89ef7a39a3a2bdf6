export { OutlierDetector, type OutlierResult, type EjectionReason, type HostOutlierState, type OutlierOptions } from './detector.js';
