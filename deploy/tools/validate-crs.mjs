// Validates custom resources against the schemas of their operators, as shipped by the
// kubernetes-models packages (Argo CD, External Secrets, Karpenter, prometheus-operator),
// offline, in two passes:
//   1. the packages' JSON-schema validators: types, enums, patterns, required fields;
//   2. strictness, which those validators lack (their objects are open): each resource is
//      typed as the package's TypeScript interface and compiled, so a field the schema does
//      not know is an excess-property error, as `kubernetes-validate --strict` reports for
//      Kubernetes kinds.
// Reads a JSON array of resources on stdin; writes one JSON line per resource:
// {"index": i, "status": "ok" | "invalid" | "no-schema", "message": "..."}.
// Called by check_manifests.py, which decides what a "no-schema" means.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const PACKAGES = {
  'argoproj.io': '@kubernetes-models/argo-cd',
  'external-secrets.io': '@kubernetes-models/external-secrets',
  'generators.external-secrets.io': '@kubernetes-models/external-secrets',
  'karpenter.sh': '@kubernetes-models/karpenter',
  'karpenter.k8s.aws': '@kubernetes-models/karpenter',
  'monitoring.coreos.com': '@kubernetes-models/prometheus-operator',
};

function modulePath(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const pkg = PACKAGES[group];
  if (!pkg || !/^[A-Za-z0-9]+$/.test(kind) || !/^v[0-9a-z]+$/.test(version)) return null;
  return `${pkg}/${group}/${version}/${kind}`;
}

async function modelFor(apiVersion, kind) {
  const path = modulePath(apiVersion, kind);
  if (!path) return null;
  try {
    const mod = await import(path);
    return mod[kind] ?? null;
  } catch (e) {
    if (e && (e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'ERR_PACKAGE_PATH_NOT_EXPORTED')) return null;
    throw e;
  }
}

// Pass 2: one TypeScript file, one typed constant per resource; diagnostics map back by line.
function strictErrors(resources, indexes) {
  const here = dirname(fileURLToPath(import.meta.url));
  const dir = join(here, 'node_modules', '.cache', 'flash-crs');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'resources.ts');
  const lines = [];
  const lineOf = [];
  for (const i of indexes) {
    const r = resources[i];
    lines.push(`export const r${i}: import(${JSON.stringify(modulePath(r.apiVersion, r.kind))}).I${r.kind} =`);
    lineOf.push([lines.length, i]);
    for (const l of JSON.stringify(r, null, 1).split('\n')) lines.push(l);
    lines.push(';');
  }
  writeFileSync(file, lines.join('\n') + '\n');
  const program = ts.createProgram([file], {
    noEmit: true, strict: true, skipLibCheck: true, types: [],
    module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler, target: ts.ScriptTarget.ES2022,
  });
  const errors = new Map();
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, ' ');
    if (!d.file || d.file.fileName !== file) {
      errors.set(-1, `TypeScript: ${message}`);
      continue;
    }
    const line = d.file.getLineAndCharacterOfPosition(d.start).line + 1;
    let owner = lineOf[0][1];
    for (const [start, i] of lineOf) if (start <= line) owner = i;
    const where = lines[line - 1].trim().slice(0, 80);
    errors.set(owner, `${errors.has(owner) ? errors.get(owner) + '; ' : ''}${message} (at ${where})`);
  }
  return errors;
}

let input = '';
for await (const chunk of process.stdin) input += chunk;
const resources = JSON.parse(input);
const results = [];
for (const [index, resource] of resources.entries()) {
  const Model = await modelFor(String(resource.apiVersion ?? ''), String(resource.kind ?? ''));
  if (!Model) {
    results.push({ index, status: 'no-schema', message: `no schema for ${resource.apiVersion} ${resource.kind}` });
    continue;
  }
  try {
    new Model(resource).validate();
    results.push({ index, status: 'ok', message: '' });
  } catch (e) {
    results.push({ index, status: 'invalid', message: String(e?.message ?? e) });
  }
}
const typed = results.filter((r) => r.status !== 'no-schema').map((r) => r.index);
const strict = typed.length ? strictErrors(resources, typed) : new Map();
if (strict.has(-1)) {
  console.error(strict.get(-1));
  process.exit(2);
}
for (const r of results) {
  if (strict.has(r.index)) {
    r.status = 'invalid';
    r.message = [r.message, `strict: ${strict.get(r.index)}`].filter(Boolean).join('; ');
  }
  process.stdout.write(JSON.stringify(r) + '\n');
}
