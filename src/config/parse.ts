/**
 * Text → validated resources. YAML (many documents) and JSON go through the same `yaml` parser so
 * every field keeps its source position; each error is reported at the line of the offending field.
 */
import { LineCounter, isMap, isScalar, isSeq, parseAllDocuments, type Document, type YAMLError } from 'yaml';
import type { ConfigError, Kind, ObjectMeta, ParseResult, Resource } from './types.js';
import { DESCRIPTORS, KNOWN_GROUPS, apiVersions, descriptorFor, type KindDescriptor } from './descriptors.js';
import { Checker, closest, describe, dnsLabel, dnsSubdomain, formatPath, isObject, isSet, labels, mapOf, obj, str, type Path } from './schema.js';

export const DEFAULT_NAMESPACE = 'default';

/** Where each resource's fields are, for analyzers that report at a field's line. */
const positions = new WeakMap<object, { node: unknown; lc: LineCounter }>();

/** Line of a field of a parsed resource (its first line when the path is unknown or the resource was copied). */
export function fieldLine(resource: Resource, path: Path): number {
  const pos = positions.get(resource);
  return pos ? lineOf(pos.node, path, pos.lc, resource.source.line) : resource.source.line;
}

const SYNTAX_MESSAGES: Record<string, string> = {
  TAB_AS_INDENT: 'tab character used for indentation (YAML allows spaces only)',
  DUPLICATE_KEY: 'duplicate key',
};

/** Parses one file's text. Never throws on bad input: every problem found is in `errors`. */
export function parseConfigText(file: string, text: string): ParseResult {
  const out: ParseResult = { resources: [], errors: [] };
  let src = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  // JSON may be indented with tabs, which YAML forbids; outside strings a tab is only whitespace, so
  // swapping it for a space changes nothing, not even an offset.
  if (/\.json$/i.test(file) || /^\s*[[{]/.test(src)) src = src.replace(/^[\t ]+/gm, (m) => m.replace(/\t/g, ' '));

  const lc = new LineCounter();
  let docs: Document.Parsed[];
  try {
    docs = Array.from(parseAllDocuments(src, { lineCounter: lc, prettyErrors: false }) as Iterable<Document.Parsed>);
  } catch (e) {
    out.errors.push({ severity: 'error', file, message: `cannot parse: ${e instanceof Error ? e.message : String(e)}` });
    return out;
  }
  const lineAt = (offset: number) => lc.linePos(offset).line;

  for (const doc of docs) {
    if (doc.errors.length > 0) {
      out.errors.push(...syntaxErrors(file, src, doc.errors, lineAt));
      continue;
    }
    const root = doc.contents;
    if (root === null || (isScalar(root) && root.value === null)) continue;
    let js: unknown;
    try {
      js = doc.toJS({ maxAliasCount: 1000 });
    } catch (e) {
      out.errors.push({ severity: 'error', file, line: lineAt(root.range?.[0] ?? 0), message: e instanceof Error ? e.message : String(e) });
      continue;
    }
    if (isSeq(root) && Array.isArray(js)) {
      js.forEach((item, i) => handleObject(file, root.items[i], item, lc, out));
    } else {
      handleObject(file, root, js, lc, out);
    }
  }
  return out;
}

/**
 * After a tab used as indentation, the parser's later complaints are nearly always fallout from
 * it, so a document reports its tab lines only; otherwise its first error, for the same reason.
 */
function syntaxErrors(file: string, src: string, errors: YAMLError[], lineAt: (o: number) => number): ConfigError[] {
  const sorted = [...errors].sort((a, b) => a.pos[0] - b.pos[0]);
  const tabs = sorted.filter((e) => e.code === 'TAB_AS_INDENT');
  const chosen = tabs.length > 0 ? tabs : sorted.slice(0, 1);
  const seen = new Set<number>();
  const res: ConfigError[] = [];
  for (const e of chosen) {
    const line = lineAt(e.pos[0]);
    if (seen.has(line)) continue;
    seen.add(line);
    let msg = SYNTAX_MESSAGES[e.code] ?? `YAML syntax error: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+.*$/, '')}`;
    if (e.code === 'DUPLICATE_KEY') {
      const m = /^("[^"\n]*"|'[^'\n]*'|[^:\n]+?)\s*:/.exec(src.slice(e.pos[0], e.pos[0] + 200));
      if (m) msg = `duplicate key ${m[1]!.startsWith('"') ? m[1] : JSON.stringify(m[1]!.replace(/^'|'$/g, ''))}`;
    }
    res.push({ severity: 'error', file, line, message: msg });
  }
  return res;
}

const META_PASSTHROUGH = [
  'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds',
  'managedFields', 'ownerReferences', 'finalizers', 'generateName', 'selfLink',
];

function metadataCheck(d: KindDescriptor) {
  return obj(
    {
      name: d.kind === 'Namespace' || d.kind === 'Service' ? dnsLabel : dnsSubdomain,
      namespace: dnsLabel,
      labels,
      annotations: mapOf(str()),
    },
    { required: ['name'], passthrough: META_PASSTHROUGH },
  );
}

function handleObject(file: string, node: unknown, js: unknown, lc: LineCounter, out: ParseResult): void {
  const startLine = lineOfNode(node, lc) ?? 1;
  if (!isObject(js)) {
    out.errors.push({ severity: 'error', file, line: startLine, message: `expected a Kubernetes object with apiVersion, kind and metadata (got ${describe(js)})` });
    return;
  }
  const at = (path: Path) => lineOf(node, path, lc, startLine);

  // A `kind: List` (what `kubectl get -o yaml` prints) is only a wrapper.
  if (js.kind === 'List' && (js.apiVersion === 'v1' || js.apiVersion === undefined)) {
    if (!Array.isArray(js.items)) {
      out.errors.push({ severity: 'error', file, line: at(['items']), kind: 'List', path: 'items', message: `expected a list (got ${describe(js.items)})` });
      return;
    }
    const itemsNode = isMap(node) ? node.get('items', true) : undefined;
    js.items.forEach((item, i) => handleObject(file, isSeq(itemsNode) ? itemsNode.items[i] : undefined, item, lc, out));
    return;
  }

  const kind = js.kind;
  const apiVersion = js.apiVersion;
  const meta = isObject(js.metadata) ? js.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : undefined;
  if (typeof kind !== 'string' || kind === '') {
    out.errors.push({ severity: 'error', file, line: at(['kind']), path: 'kind', message: isSet(kind) ? `expected a string (got ${describe(kind)})` : 'missing required field' });
    return;
  }
  const d = descriptorFor(kind);
  const version = typeof apiVersion === 'string' ? apiVersion : '';
  const slash = version.lastIndexOf('/');
  const group = slash >= 0 ? version.slice(0, slash) : '';
  const ver = slash >= 0 ? version.slice(slash + 1) : version;
  // A known kind name under a foreign group is another API's kind (gateway.networking.k8s.io Gateway).
  if (!d || (version !== '' && !KNOWN_GROUPS.has(group))) {
    const av = typeof apiVersion === 'string' ? apiVersion : 'no apiVersion';
    out.errors.push(unusedKind(file, startLine, kind, av, group));
    if (name !== undefined) {
      const ns = typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : DEFAULT_NAMESPACE;
      (out.others ??= []).push({ kind, apiVersion: av, namespace: ns, name, source: { file, line: startLine } });
    }
    return;
  }

  const namespace = d.namespaced ? (typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : DEFAULT_NAMESPACE) : undefined;
  const errs: ConfigError[] = [];
  const c = new Checker();

  if (typeof apiVersion !== 'string') {
    c.error(['apiVersion'], isSet(apiVersion) ? `expected a string (got ${describe(apiVersion)})` : 'missing required field');
  } else if (d.group !== group || !d.versions.includes(ver)) {
    const use = apiVersions(d).join(', ');
    c.error(['apiVersion'], d.group !== group ? `${kind} is not in API group ${JSON.stringify(group || 'core')} (use ${use})` : `${apiVersion} is not a supported version of ${kind} (use ${use})`);
  }
  if (!isSet(js.metadata)) c.error(['metadata'], 'missing required field');
  else metadataCheck(d)(c, js.metadata, ['metadata']);
  if (!d.namespaced && isSet(meta.namespace)) c.warn(['metadata', 'namespace'], `ignored: ${kind} is cluster-scoped`);

  const topLevel = new Set(['apiVersion', 'kind', 'metadata', 'spec', 'status', ...(d.extraTopLevel ?? [])]);
  for (const k of Object.keys(js)) if (!topLevel.has(k)) c.warn([k], 'unknown field');

  if (isSet(js.spec)) d.spec(c, js.spec, ['spec']);
  else if (d.specRequired) c.error(['spec'], 'missing required field');

  for (const issue of c.issues) {
    errs.push({
      severity: issue.severity,
      file,
      line: at(issue.path),
      kind,
      ...(namespace !== undefined ? { namespace } : {}),
      ...(name !== undefined ? { name } : {}),
      path: formatPath(issue.path),
      message: issue.message,
    });
  }
  errs.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  out.errors.push(...errs);
  if (errs.some((e) => e.severity === 'error') || name === undefined) return;

  const metadata: ObjectMeta = { name };
  if (namespace !== undefined) metadata.namespace = namespace;
  if (isObject(meta.labels)) metadata.labels = meta.labels as Record<string, string>;
  if (isObject(meta.annotations)) metadata.annotations = meta.annotations as Record<string, string>;
  const rawSpec = isObject(js.spec) ? js.spec : {};
  const resource: Resource = {
    apiVersion: version,
    kind: d.kind as Kind,
    metadata,
    spec: d.normalize ? d.normalize(rawSpec) : rawSpec,
    source: { file, line: startLine },
  };
  positions.set(resource, { node, lc });
  out.resources.push(resource);
}

function lineOfNode(node: unknown, lc: LineCounter): number | undefined {
  const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
  return range ? lc.linePos(range[0]).line : undefined;
}

/** Follows a field path through the YAML nodes; stops at the deepest node that exists. */
function lineOf(root: unknown, path: Path, lc: LineCounter, fallback: number): number {
  let node: unknown = root;
  let line = lineOfNode(root, lc) ?? fallback;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((it) => String(isScalar(it.key) ? it.key.value : it.key) === String(seg));
      if (!pair) break;
      line = lineOfNode(pair.key, lc) ?? line;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      if (item === undefined) break;
      line = lineOfNode(item, lc) ?? line;
      node = item;
    } else break;
  }
  return line;
}

/** Kinds, for help texts. */
export function knownKinds(): string[] {
  return DESCRIPTORS.map((d) => d.kind);
}

/** Istio kinds Isle does not implement, by API group; the rest of an Istio group is a typo. */
const ISTIO_UNSUPPORTED: Readonly<Record<string, readonly string[]>> = {
  'networking.istio.io': ['Sidecar', 'ProxyConfig'],
  'security.istio.io': ['RequestAuthentication'],
  'extensions.istio.io': ['WasmPlugin'],
};

/**
 * A kind Isle does not read. In an Istio or Isle API group it is either an Istio kind Isle does not
 * implement (a warning; an error for security kinds, whose rules would silently not be enforced)
 * or a typo (an error, with a did-you-mean). Elsewhere (a Deployment, a ConfigMap) it is skipped
 * with a warning, so a directory of Kubernetes manifests can be analyzed.
 */
function unusedKind(file: string, line: number, kind: string, av: string, group: string): ConfigError {
  const guess = closest(kind, DESCRIPTORS.map((x) => x.kind));
  const hint = guess && guess !== kind ? ` (did you mean ${guess}?)` : '';
  const unsupported = ISTIO_UNSUPPORTED[group];
  if (unsupported?.includes(kind)) {
    return group === 'security.istio.io'
      ? { severity: 'error', file, line, path: 'kind', message: `kind ${kind} (${av}) is not supported by Isle yet: its rules would not be enforced` }
      : { severity: 'warning', file, line, message: `kind ${kind} (${av}) is not supported by Isle yet; ignored` };
  }
  if (group !== '' && (KNOWN_GROUPS.has(group) || unsupported !== undefined)) {
    return { severity: 'error', file, line, path: 'kind', message: `unknown kind ${kind} in ${group}${hint}` };
  }
  return { severity: 'warning', file, line, message: `kind ${kind} (${av}) is not used by Isle; ignored${hint}` };
}
