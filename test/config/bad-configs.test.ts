import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../src/config/parse.js';
import { formatConfigError } from '../../src/config/types.js';

function problems(text: string, file: string): string[] {
  return parseConfigText(file, text).errors.map(formatConfigError);
}

/**
 * Bad configs and the exact messages users get. Each case is one file's text; every problem in it
 * is expected, in order (per resource, by line).
 */
interface Case {
  name: string;
  file: string;
  text: string;
  expected: string[];
}

const CASES: Case[] = [
  {
    name: "route weights not summing to 100",
    file: "cluster-1/vs.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: helloworld
spec:
  hosts:
  - helloworld
  http:
  - route:
    - destination:
        host: helloworld
        subset: v1
      weight: 100
    - destination:
        host: helloworld
        subset: v2
      weight: 30`,
    expected: [
      "cluster-1/vs.yaml:9 VirtualService default/helloworld: spec.http[0].route: weights must sum to 100 (got 130)",
    ],
  },
  {
    name: "bad apiVersion version",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v2
kind: VirtualService
metadata:
  name: a
spec:
  hosts: [a]
  http: [{route: [{destination: {host: a}}]}]`,
    expected: [
      "bad.yaml:1 VirtualService default/a: apiVersion: networking.istio.io/v2 is not a supported version of VirtualService (use networking.istio.io/v1, networking.istio.io/v1beta1, networking.istio.io/v1alpha3)",
    ],
  },
  {
    name: "known kind in the wrong group",
    file: "bad.yaml",
    text: `apiVersion: security.istio.io/v1
kind: DestinationRule
metadata:
  name: a
spec:
  host: a`,
    expected: [
      "bad.yaml:1 DestinationRule default/a: apiVersion: DestinationRule is not in API group \"security.istio.io\" (use networking.istio.io/v1, networking.istio.io/v1beta1, networking.istio.io/v1alpha3)",
    ],
  },
  {
    name: "missing name",
    file: "bad.yaml",
    text: `apiVersion: v1
kind: Service
metadata:
  namespace: hello
spec:
  ports: [{port: 80}]`,
    expected: [
      "bad.yaml:3 Service: metadata.name: missing required field",
    ],
  },
  {
    name: "missing metadata and spec",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: DestinationRule`,
    expected: [
      "bad.yaml:1 DestinationRule: metadata: missing required field",
      "bad.yaml:1 DestinationRule: spec: missing required field",
    ],
  },
  {
    name: "name not DNS-1123",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: My_Service
spec:
  hosts: [api.example.com]`,
    expected: [
      "bad.yaml:4 ServiceEntry default/My_Service: metadata.name: invalid name \"My_Service\" (must be a DNS-1123 name: lowercase letters, digits, '-' and '.', at most 253 characters)",
    ],
  },
  {
    name: "missing kind",
    file: "bad.yaml",
    text: `apiVersion: v1
metadata:
  name: a`,
    expected: [
      "bad.yaml:1: kind: missing required field",
    ],
  },
  {
    name: "bad timeout duration",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: helloworld
spec:
  hosts: [helloworld]
  http:
  - timeout: 10
    route:
    - destination: {host: helloworld}`,
    expected: [
      "bad.yaml:8 VirtualService default/helloworld: spec.http[0].timeout: invalid duration 10 (use a number and a unit: 10s, 600ms, 1h, 1.5s)",
    ],
  },
  {
    name: "bad perTryTimeout, attempts and retryOn",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: helloworld
spec:
  hosts: [helloworld]
  http:
  - route:
    - destination: {host: helloworld}
    retries:
      attempts: -1
      perTryTimeout: 2 seconds
      retryOn: 5xx,connect-failure,sometimes`,
    expected: [
      "bad.yaml:11 VirtualService default/helloworld: spec.http[0].retries.attempts: must be at least 0 (got -1)",
      "bad.yaml:12 VirtualService default/helloworld: spec.http[0].retries.perTryTimeout: invalid duration \"2 seconds\" (use a number and a unit: 10s, 600ms, 1h, 1.5s)",
      "bad.yaml:13 VirtualService default/helloworld: spec.http[0].retries.retryOn: unknown retry condition \"sometimes\"",
    ],
  },
  {
    name: "uri match with two match types, regex invalid",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: helloworld
spec:
  hosts: [helloworld]
  http:
  - match:
    - uri:
        prefix: /api
        exact: /api/v1
    - uri:
        regex: "(unclosed"
    route:
    - destination: {host: helloworld}`,
    expected: [
      "bad.yaml:9 VirtualService default/helloworld: spec.http[0].match[0].uri: must set exactly one of exact, prefix, regex",
      "bad.yaml:13 VirtualService default/helloworld: spec.http[0].match[1].uri.regex: invalid regular expression \"(unclosed\"",
    ],
  },
  {
    name: "header match with capitals, queryParams prefix",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: helloworld
spec:
  hosts: [helloworld]
  http:
  - match:
    - headers:
        End-User:
          exact: jason
      queryParams:
        debug:
          prefix: "1"
    route:
    - destination: {host: helloworld}`,
    expected: [
      "bad.yaml:10 VirtualService default/helloworld: spec.http[0].match[0].headers.End-User: header name \"End-User\" must be lowercase",
      "bad.yaml:14 VirtualService default/helloworld: spec.http[0].match[0].queryParams.debug.prefix: prefix match is not supported here (use exact or regex)",
    ],
  },
  {
    name: "match port out of range and sourceLabels not strings",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: helloworld
spec:
  hosts: [helloworld]
  http:
  - match:
    - port: 70000
      sourceLabels:
        version: 1
    route:
    - destination: {host: helloworld}`,
    expected: [
      "bad.yaml:9 VirtualService default/helloworld: spec.http[0].match[0].port: must be between 1 and 65535 (got 70000)",
      "bad.yaml:11 VirtualService default/helloworld: spec.http[0].match[0].sourceLabels.version: label value must be a string (got 1; quote it)",
    ],
  },
  {
    name: "destination without host, port number not an integer",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: helloworld
spec:
  hosts: [helloworld]
  http:
  - route:
    - destination:
        subset: v1
        port:
          number: http`,
    expected: [
      "bad.yaml:9 VirtualService default/helloworld: spec.http[0].route[0].destination.host: missing required field",
      "bad.yaml:12 VirtualService default/helloworld: spec.http[0].route[0].destination.port.number: expected an integer (got \"http\")",
    ],
  },
  {
    name: "route and redirect together",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: helloworld
spec:
  hosts: [helloworld]
  http:
  - redirect:
      uri: /new
      redirectCode: 200
    route:
    - destination: {host: helloworld}`,
    expected: [
      "bad.yaml:8 VirtualService default/helloworld: spec.http[0].redirect: cannot set both route and redirect",
      "bad.yaml:10 VirtualService default/helloworld: spec.http[0].redirect.redirectCode: must be between 300 and 399 (got 200)",
    ],
  },
  {
    name: "http route without action, no hosts",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: helloworld
spec:
  http:
  - name: nothing`,
    expected: [
      // A missing hosts is the analyzer's to report: only a delegate VirtualService may leave it out.
      "bad.yaml:7 VirtualService default/helloworld: spec.http[0]: must set one of route, redirect, directResponse, delegate",
    ],
  },
  {
    name: "fault delay without fixedDelay, abort status out of range",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: helloworld
spec:
  hosts: [helloworld]
  http:
  - fault:
      delay:
        percentage:
          value: 10
      abort:
        httpStatus: 700
    route:
    - destination: {host: helloworld}`,
    expected: [
      "bad.yaml:9 VirtualService default/helloworld: spec.http[0].fault.delay.fixedDelay: missing required field",
      "bad.yaml:13 VirtualService default/helloworld: spec.http[0].fault.abort.httpStatus: must be between 200 and 599 (got 700)",
    ],
  },
  {
    name: "rewrite uri with uriRegexRewrite, mirror percentage above 100",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: helloworld
spec:
  hosts: [helloworld]
  http:
  - rewrite:
      uri: /
      uriRegexRewrite:
        match: ^/api
        rewrite: /
    mirror:
      host: helloworld-shadow
    mirrorPercentage:
      value: 150
    route:
    - destination: {host: helloworld}`,
    expected: [
      "bad.yaml:10 VirtualService default/helloworld: spec.http[0].rewrite.uriRegexRewrite: cannot set both uri and uriRegexRewrite",
      "bad.yaml:16 VirtualService default/helloworld: spec.http[0].mirrorPercentage.value: must be between 0 and 100 (got 150)",
    ],
  },
  {
    name: "headers set not a map, remove not a list",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: helloworld
spec:
  hosts: [helloworld]
  http:
  - headers:
      request:
        set: x-user
      response:
        remove: x-internal
    route:
    - destination: {host: helloworld}`,
    expected: [
      "bad.yaml:10 VirtualService default/helloworld: spec.http[0].headers.request.set: expected a mapping (got \"x-user\")",
      "bad.yaml:12 VirtualService default/helloworld: spec.http[0].headers.response.remove: expected a list (got \"x-internal\")",
    ],
  },
  {
    name: "tcp route weights and bad exportTo",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: helloworld
spec:
  hosts: [db]
  exportTo: ["Other_NS"]
  tcp:
  - route:
    - destination: {host: db-a}
      weight: 50
    - destination: {host: db-b}
      weight: 40`,
    expected: [
      "bad.yaml:7 VirtualService default/helloworld: spec.exportTo[0]: invalid exportTo value \"Other_NS\" (use \".\", \"*\" or a namespace)",
      "bad.yaml:9 VirtualService default/helloworld: spec.tcp[0].route: weights must sum to 100 (got 90)",
    ],
  },
  {
    name: "typo in a spec field is a warning",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: helloworld
spec:
  hosts: [helloworld]
  http:
  - route:
    - destination: {host: helloworld}
      wieght: 100`,
    expected: [
      "bad.yaml:10 VirtualService default/helloworld: warning: spec.http[0].route[0].wieght: unknown field (did you mean \"weight\"?)",
    ],
  },
  {
    name: "distribute weights not summing to 100",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: helloworld
spec:
  host: "*.cluster.local"
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        enabled: true
        distribute:
        - from: region1/*
          to:
            "region1/*": 70
            "region2/*": 20`,
    expected: [
      "bad.yaml:13 DestinationRule default/helloworld: spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to: weights must sum to 100 (got 90)",
    ],
  },
  {
    name: "distribute and failover together, bad locality",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: helloworld
spec:
  host: helloworld
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        distribute:
        - from: region1/*/zone
          to:
            "region1/*": 100
        failover:
        - from: region1
          to: region1
    outlierDetection:
      consecutive5xxErrors: 1`,
    expected: [
      "bad.yaml:11 DestinationRule default/helloworld: spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].from: invalid locality \"region1/*/zone\" (use region/zone/subzone; '*' only last)",
      "bad.yaml:14 DestinationRule default/helloworld: spec.trafficPolicy.loadBalancer.localityLbSetting.failover: cannot set both distribute and failover",
      "bad.yaml:16 DestinationRule default/helloworld: spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0].to: failover must go to a different region (got \"region1\" twice)",
    ],
  },
  {
    name: "outlier detection out of range",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: helloworld
spec:
  host: helloworld
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: -5
      consecutiveGatewayErrors: many
      interval: 10
      baseEjectionTime: 0s
      maxEjectionPercent: 101`,
    expected: [
      "bad.yaml:9 DestinationRule default/helloworld: spec.trafficPolicy.outlierDetection.consecutive5xxErrors: must be at least 0 (got -5)",
      "bad.yaml:10 DestinationRule default/helloworld: spec.trafficPolicy.outlierDetection.consecutiveGatewayErrors: expected an integer (got \"many\")",
      "bad.yaml:11 DestinationRule default/helloworld: spec.trafficPolicy.outlierDetection.interval: invalid duration 10 (use a number and a unit: 10s, 600ms, 1h, 1.5s)",
      "bad.yaml:12 DestinationRule default/helloworld: spec.trafficPolicy.outlierDetection.baseEjectionTime: duration must be at least 1ms (got \"0s\")",
      "bad.yaml:13 DestinationRule default/helloworld: spec.trafficPolicy.outlierDetection.maxEjectionPercent: must be between 0 and 100 (got 101)",
    ],
  },
  {
    name: "tls mode unknown, ISTIO_MUTUAL with certificates",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: helloworld
spec:
  host: helloworld
  trafficPolicy:
    tls:
      mode: STRICT
    portLevelSettings:
    - port:
        number: 80
      tls:
        mode: ISTIO_MUTUAL
        clientCertificate: /etc/certs/cert.pem`,
    expected: [
      "bad.yaml:9 DestinationRule default/helloworld: spec.trafficPolicy.tls.mode: must be one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL (got \"STRICT\")",
      "bad.yaml:15 DestinationRule default/helloworld: spec.trafficPolicy.portLevelSettings[0].tls.clientCertificate: must not be set when mode is ISTIO_MUTUAL (the mesh provides the certificates)",
    ],
  },
  {
    name: "MUTUAL tls without client certificate",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: helloworld
spec:
  host: helloworld
  trafficPolicy:
    tls:
      mode: MUTUAL
      caCertificates: /etc/certs/root.pem`,
    expected: [
      "bad.yaml:8 DestinationRule default/helloworld: spec.trafficPolicy.tls.clientCertificate: missing required field (mode is MUTUAL and no credentialName)",
      "bad.yaml:8 DestinationRule default/helloworld: spec.trafficPolicy.tls.privateKey: missing required field (mode is MUTUAL and no credentialName)",
    ],
  },
  {
    name: "load balancer simple and consistentHash, unknown simple",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: helloworld
spec:
  host: helloworld
  trafficPolicy:
    loadBalancer:
      simple: FASTEST
      consistentHash:
        httpHeaderName: x-user`,
    expected: [
      "bad.yaml:9 DestinationRule default/helloworld: spec.trafficPolicy.loadBalancer.simple: must be one of UNSPECIFIED, LEAST_CONN, RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST (got \"FASTEST\")",
      "bad.yaml:10 DestinationRule default/helloworld: spec.trafficPolicy.loadBalancer.consistentHash: cannot set both simple and consistentHash",
    ],
  },
  {
    name: "subsets without name and duplicated",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: helloworld
spec:
  host: helloworld
  subsets:
  - labels:
      version: v1
  - name: v2
    labels:
      version: v2
  - name: v2
    labels:
      version: v3`,
    expected: [
      "bad.yaml:8 DestinationRule default/helloworld: spec.subsets[0].name: missing required field",
      "bad.yaml:13 DestinationRule default/helloworld: spec.subsets[2].name: duplicate subset \"v2\"",
    ],
  },
  {
    name: "connection pool types",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: helloworld
spec:
  host: helloworld
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: "100"
        connectTimeout: 30
      http:
        h2UpgradePolicy: ALWAYS
        idleTimeout: 1.5s`,
    expected: [
      "bad.yaml:10 DestinationRule default/helloworld: spec.trafficPolicy.connectionPool.tcp.maxConnections: expected an integer (got \"100\")",
      "bad.yaml:11 DestinationRule default/helloworld: spec.trafficPolicy.connectionPool.tcp.connectTimeout: invalid duration 30 (use a number and a unit: 10s, 600ms, 1h, 1.5s)",
      "bad.yaml:13 DestinationRule default/helloworld: spec.trafficPolicy.connectionPool.http.h2UpgradePolicy: must be one of DEFAULT, DO_NOT_UPGRADE, UPGRADE (got \"ALWAYS\")",
    ],
  },
  {
    name: "ServiceEntry enums and ports",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: external
  namespace: egress
spec:
  hosts:
  - api.example.com
  location: MESH_OUTSIDE
  resolution: DNS_ONLY
  ports:
  - number: 443
    protocol: HTTPX
  - name: https
    number: 0`,
    expected: [
      "bad.yaml:9 ServiceEntry egress/external: spec.location: must be one of MESH_EXTERNAL, MESH_INTERNAL (got \"MESH_OUTSIDE\")",
      "bad.yaml:10 ServiceEntry egress/external: spec.resolution: must be one of NONE, STATIC, DNS, DNS_ROUND_ROBIN (got \"DNS_ONLY\")",
      "bad.yaml:12 ServiceEntry egress/external: spec.ports[0].name: missing required field",
      "bad.yaml:13 ServiceEntry egress/external: spec.ports[0].protocol: must be one of HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, MONGO, REDIS, MYSQL, TCP, TLS, UDP (got \"HTTPX\")",
      "bad.yaml:15 ServiceEntry egress/external: spec.ports[1].number: must be between 1 and 65535 (got 0)",
    ],
  },
  {
    name: "ServiceEntry STATIC needs IP endpoints, endpoint port names",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: db
spec:
  hosts: [db.internal]
  addresses: [10.0.0.0/33]
  ports:
  - name: tcp
    number: 5432
    protocol: TCP
  resolution: STATIC
  endpoints:
  - address: db.example.com
    ports:
      postgres: 5432
    locality: us-east/us-east-1a/rack-7/extra
    weight: -1`,
    expected: [
      "bad.yaml:7 ServiceEntry default/db: spec.addresses[0]: invalid IP address or CIDR \"10.0.0.0/33\"",
      "bad.yaml:14 ServiceEntry default/db: spec.endpoints[0].address: must be an IP address when resolution is STATIC (got \"db.example.com\")",
      "bad.yaml:16 ServiceEntry default/db: spec.endpoints[0].ports.postgres: port \"postgres\" is not one of the ServiceEntry's ports",
      "bad.yaml:17 ServiceEntry default/db: spec.endpoints[0].locality: invalid locality \"us-east/us-east-1a/rack-7/extra\" (use region/zone/subzone)",
      "bad.yaml:18 ServiceEntry default/db: spec.endpoints[0].weight: must be between 0 and 4294967295 (got -1)",
    ],
  },
  {
    name: "ServiceEntry DNS with wildcard host and no endpoints",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: wild
spec:
  hosts: ["*.example.com"]
  ports: [{name: https, number: 443, protocol: TLS}]
  resolution: DNS`,
    expected: [
      "bad.yaml:6 ServiceEntry default/wild: spec.hosts[0]: wildcard host \"*.example.com\" cannot be resolved by DNS (add endpoints or use resolution NONE)",
    ],
  },
  {
    name: "WorkloadEntry fields",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: vm-1
  namespace: hello
spec:
  address: 10.0.0.300
  ports:
    http: 80800
  labels:
    app: helloworld
  locality: us-west/
  weight: 1.5
  serviceAccount: Hello_SA`,
    expected: [
      "bad.yaml:9 WorkloadEntry hello/vm-1: spec.ports.http: must be between 1 and 65535 (got 80800)",
      "bad.yaml:12 WorkloadEntry hello/vm-1: spec.locality: invalid locality \"us-west/\" (use region/zone/subzone)",
      "bad.yaml:13 WorkloadEntry hello/vm-1: spec.weight: expected an integer (got 1.5)",
      "bad.yaml:14 WorkloadEntry hello/vm-1: spec.serviceAccount: invalid name \"Hello_SA\" (must be a DNS-1123 label: lowercase letters, digits and '-', at most 63 characters)",
    ],
  },
  {
    name: "WorkloadEntry without address or network",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: vm-2
spec:
  labels:
    app: helloworld`,
    expected: [
      "bad.yaml:5 WorkloadEntry default/vm-2: spec.address: missing required field (or set network)",
    ],
  },
  {
    name: "PeerAuthentication bad mode and portLevelMtls without selector",
    file: "bad.yaml",
    text: `apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICTER
  portLevelMtls:
    "8080":
      mode: DISABLE
    "99999":
      mode: PERMISSIVE`,
    expected: [
      "bad.yaml:8 PeerAuthentication istio-system/default: spec.mtls.mode: must be one of UNSET, DISABLE, PERMISSIVE, STRICT (got \"STRICTER\")",
      "bad.yaml:9 PeerAuthentication istio-system/default: spec.portLevelMtls: requires a selector with matchLabels",
      "bad.yaml:12 PeerAuthentication istio-system/default: spec.portLevelMtls[\"99999\"]: invalid port \"99999\" (1-65535)",
    ],
  },
  {
    name: "Gateway without servers hosts, HTTPS without tls",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: ingress
  namespace: istio-system
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 443
      name: https
      protocol: HTTPS
  - port:
      number: 80
      protocol: HTTP
    hosts: []`,
    expected: [
      "bad.yaml:10 Gateway istio-system/ingress: spec.servers[0].hosts: missing required field",
      "bad.yaml:10 Gateway istio-system/ingress: spec.servers[0].tls: missing required field (port protocol is HTTPS)",
      "bad.yaml:14 Gateway istio-system/ingress: spec.servers[1].port.name: missing required field",
      "bad.yaml:17 Gateway istio-system/ingress: spec.servers[1].hosts: must not be empty",
    ],
  },
  {
    name: "AuthorizationPolicy action and provider",
    file: "bad.yaml",
    text: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ext-authz
spec:
  action: CUSTOM
  rules:
  - when:
    - values: ["x"]`,
    expected: [
      "bad.yaml:5 AuthorizationPolicy default/ext-authz: spec.provider: missing required field (action is CUSTOM)",
      "bad.yaml:9 AuthorizationPolicy default/ext-authz: spec.rules[0].when[0].key: missing required field",
    ],
  },
  {
    name: "Service ports",
    file: "bad.yaml",
    text: `apiVersion: v1
kind: Service
metadata:
  name: helloworld
  namespace: hello
spec:
  type: Cluster
  selector:
    app: helloworld
  ports:
  - port: 5000
    targetPort: http-port-too-long-name
  - port: 5000
    name: grpc
    protocol: HTTP`,
    expected: [
      "bad.yaml:7 Service hello/helloworld: spec.type: must be one of ClusterIP, NodePort, LoadBalancer, ExternalName (got \"Cluster\")",
      "bad.yaml:11 Service hello/helloworld: spec.ports[0].name: missing required field (a Service with several ports must name each one)",
      "bad.yaml:12 Service hello/helloworld: spec.ports[0].targetPort: invalid port name \"http-port-too-long-name\" (a port number or a name of at most 15 lowercase letters, digits and '-')",
      "bad.yaml:13 Service hello/helloworld: spec.ports[1].port: duplicate port 5000",
      "bad.yaml:15 Service hello/helloworld: spec.ports[1].protocol: must be one of TCP, UDP, SCTP (got \"HTTP\")",
    ],
  },
  {
    name: "MeshConfig bad durations and locality",
    file: "bad.yaml",
    text: `apiVersion: mesh.isle.dev/v1alpha1
kind: MeshConfig
metadata:
  name: cluster-1
spec:
  trustDomain: Cluster.Local
  defaultLocality: us-east/*/a
  debounce:
    quiet: 20s
    max: 10s`,
    expected: [
      "bad.yaml:6 MeshConfig cluster-1: spec.trustDomain: invalid trust domain \"Cluster.Local\" (lowercase letters, digits, '-', '.', '_')",
      "bad.yaml:7 MeshConfig cluster-1: spec.defaultLocality: invalid locality \"us-east/*/a\" (use region/zone/subzone)",
      "bad.yaml:9 MeshConfig cluster-1: spec.debounce.quiet: must not be longer than max (10s)",
    ],
  },
  {
    name: "MeshConfig debounce not a duration",
    file: "bad.yaml",
    text: `apiVersion: mesh.isle.dev/v1alpha1
kind: MeshConfig
metadata:
  name: cluster-1
spec:
  debounce:
    quiet: 100
    max: 10 s`,
    expected: [
      "bad.yaml:7 MeshConfig cluster-1: spec.debounce.quiet: invalid duration 100 (use a number and a unit: 10s, 600ms, 1h, 1.5s)",
      "bad.yaml:8 MeshConfig cluster-1: spec.debounce.max: invalid duration \"10 s\" (use a number and a unit: 10s, 600ms, 1h, 1.5s)",
    ],
  },
  {
    name: "RemoteCluster address and discoveryOnly",
    file: "bad.yaml",
    text: `apiVersion: mesh.isle.dev/v1alpha1
kind: RemoteCluster
metadata:
  name: cluster-2
  namespace: istio-system
spec:
  address: 127.2.0.1
  discoveryOnly: false`,
    expected: [
      "bad.yaml:5 RemoteCluster cluster-2: warning: metadata.namespace: ignored: RemoteCluster is cluster-scoped",
      "bad.yaml:7 RemoteCluster cluster-2: spec.address: invalid address \"127.2.0.1\" (use host:port, or a peer's replicas as host:port,host:port)",
      "bad.yaml:8 RemoteCluster cluster-2: spec.discoveryOnly: only discoveryOnly: true is supported (a peer is added for service discovery only)",
    ],
  },
  {
    name: "several documents, errors in two of them, line numbers",
    file: "multi.yaml",
    text: `# leading comment
apiVersion: v1
kind: Service
metadata:
  name: ok
spec:
  ports: [{port: 80, name: http}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: one
spec:
  host: ok
  trafficPolicy:
    outlierDetection:
      interval: 5 s
---
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: two
  namespace: other
spec:
  hosts: [ok]
  http:
  - route:
    - destination: {host: ok}
      weight: 60
    - destination: {host: ok}
      weight: 60`,
    expected: [
      "multi.yaml:17 DestinationRule default/one: spec.trafficPolicy.outlierDetection.interval: invalid duration \"5 s\" (use a number and a unit: 10s, 600ms, 1h, 1.5s)",
      "multi.yaml:28 VirtualService other/two: spec.http[0].route: weights must sum to 100 (got 120)",
    ],
  },
  {
    name: "YAML syntax error in one document, the next still checked",
    file: "multi.yaml",
    text: `apiVersion: v1
kind: Service
metadata:
  name: broken
  labels: {app: x
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: next
spec:
  host: ok
  trafficPolicy:
    tls:
      mode: mutual`,
    expected: [
      "multi.yaml:6: YAML syntax error: Flow map in block collection must be sufficiently indented and end with a }",
      "multi.yaml:15 DestinationRule default/next: spec.trafficPolicy.tls.mode: must be one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL (got \"mutual\")",
    ],
  },
  {
    name: "JSON input",
    file: "dr.json",
    text: `{
  "apiVersion": "networking.istio.io/v1",
  "kind": "DestinationRule",
  "metadata": {"name": "from-json", "namespace": "hello"},
  "spec": {
    "host": "helloworld",
    "trafficPolicy": {
      "loadBalancer": {"simple": "ROUND_ROBINS"},
      "outlierDetection": {"maxEjectionPercent": 200}
    }
  }
}`,
    expected: [
      "dr.json:8 DestinationRule hello/from-json: spec.trafficPolicy.loadBalancer.simple: must be one of UNSPECIFIED, LEAST_CONN, RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST (got \"ROUND_ROBINS\")",
      "dr.json:9 DestinationRule hello/from-json: spec.trafficPolicy.outlierDetection.maxEjectionPercent: must be between 0 and 100 (got 200)",
    ],
  },
  {
    name: "JSON with a syntax error",
    file: "bad.json",
    text: `{
  "apiVersion": "v1",
  "kind": "Service",
  "metadata": {"name": "x"},,
}`,
    expected: [
      "bad.json:4: YAML syntax error: Unexpected , in flow map",
    ],
  },
  {
    name: "List with items",
    file: "list.yaml",
    text: `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata:
    name: a
  spec:
    ports: [{port: 80}]
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata:
    name: b
  spec:
    host: a
    subsets:
    - name: V1`,
    expected: [
      "list.yaml:17 DestinationRule default/b: spec.subsets[0].name: invalid name \"V1\" (must be a DNS-1123 label: lowercase letters, digits and '-', at most 63 characters)",
    ],
  },
  {
    name: "duplicate keys",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: a
spec:
  host: a
  host: b`,
    expected: [
      "bad.yaml:7: duplicate key \"host\"",
    ],
  },
  {
    name: "not a mapping",
    file: "bad.yaml",
    text: `- just
- a list`,
    expected: [
      "bad.yaml:1: expected a Kubernetes object with apiVersion, kind and metadata (got \"just\")",
      "bad.yaml:2: expected a Kubernetes object with apiVersion, kind and metadata (got \"a list\")",
    ],
  },
  {
    name: "labels not strings and bad keys",
    file: "bad.yaml",
    text: `apiVersion: v1
kind: Namespace
metadata:
  name: hello
  namespace: ignored
  labels:
    istio-injection: true
    "bad key!": x`,
    expected: [
      "bad.yaml:5 Namespace hello: warning: metadata.namespace: ignored: Namespace is cluster-scoped",
      "bad.yaml:7 Namespace hello: metadata.labels.istio-injection: label value must be a string (got true; quote it)",
      "bad.yaml:8 Namespace hello: metadata.labels[\"bad key!\"]: invalid label key \"bad key!\"",
    ],
  },
  {
    name: "fault abort: gRPC status by number instead of name, http2Error",
    file: "bad.yaml",
    text: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: helloworld
spec:
  hosts: [helloworld]
  http:
  - fault:
      abort:
        grpcStatus: "14"
    route:
    - destination: {host: helloworld}
  - fault:
      abort:
        http2Error: REFUSED_STREAM
    route:
    - destination: {host: helloworld}`,
    expected: [
      "bad.yaml:10 VirtualService default/helloworld: spec.http[0].fault.abort.grpcStatus: unknown gRPC status \"14\" (one of OK, CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, ABORTED, OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS, UNAUTHENTICATED)",
      "bad.yaml:15 VirtualService default/helloworld: spec.http[1].fault.abort.http2Error: http2Error aborts are not supported (Istio does not implement them either); use httpStatus or grpcStatus",
    ],
  },
];

describe('bad configs: exact errors', () => {
  it('has a large table', () => assert.ok(CASES.length >= 30));
  for (const c of CASES) {
    it(c.name, () => assert.deepEqual(problems(c.text, c.file), c.expected));
  }
});
