/** Config fixtures shared by the control-plane and proxy tests (not a test file). */

/** A MeshConfig for cluster-1 on network1, with a short push debounce so tests converge fast. */
export function meshYaml(debounce: { quiet: string; max: string }): string {
  return `apiVersion: mesh.isle.dev/v1alpha1
kind: MeshConfig
metadata:
  name: mesh
spec:
  clusterName: cluster-1
  network: network1
  debounce:
    quiet: ${debounce.quiet}
    max: ${debounce.max}
`;
}

/** A MeshConfig for any cluster and network (multi-cluster tests), with `extra` spec lines. */
export function clusterMeshYaml(cluster: string, network: string, extra = ''): string {
  return `apiVersion: mesh.isle.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  clusterName: ${cluster}
  network: ${network}
  debounce: {quiet: 50ms, max: 2s}
${extra}`;
}

export const HELLOWORLD_YAML = `apiVersion: v1
kind: Service
metadata:
  name: helloworld
  namespace: default
spec:
  selector:
    app: helloworld
  ports:
  - name: http
    port: 5000
`;

export function workloadEntryYaml(name: string, address: string, serviceAccount = 'helloworld', labels: Record<string, string> = { app: 'helloworld' }): string {
  const l = Object.entries(labels).map(([k, v]) => `    ${k}: ${v}`).join('\n');
  return `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: ${name}
  namespace: default
spec:
  address: ${address}
  serviceAccount: ${serviceAccount}
  labels:
${l}
`;
}

/**
 * A WorkloadGroup: sidecars whose certificate is for `serviceAccount` auto-register through it
 * with these labels. `addresses` fills the isle.dev/workload-addresses annotation (addresses they
 * may register other than their xDS connection's source).
 */
export function workloadGroupYaml(name: string, serviceAccount: string, labels: Record<string, string>, opts: { namespace?: string; addresses?: string[]; extraTemplate?: string } = {}): string {
  const l = Object.entries(labels).map(([k, v]) => `      ${k}: ${v}`).join('\n');
  return `apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata:
  name: ${name}
  namespace: ${opts.namespace ?? 'default'}
${opts.addresses ? `  annotations:\n    isle.dev/workload-addresses: "${opts.addresses.join(',')}"\n` : ''}spec:
  metadata:
    labels:
${l}
  template:
    serviceAccount: ${serviceAccount}
${opts.extraTemplate ?? ''}`;
}
