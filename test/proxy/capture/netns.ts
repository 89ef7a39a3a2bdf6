/** The namespaces helpers live with the bench that uses them too (not a test file). */
export { captureUnsupported, execIn, HUB, NsProcess, Topology } from '../../../bench/lib/netns.js';
