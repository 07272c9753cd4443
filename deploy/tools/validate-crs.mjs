// Validates custom resources against the schemas of their operators, as shipped by the
// kubernetes-models packages (Argo CD, External Secrets, Karpenter, prometheus-operator),
// offline. Reads a JSON array of resources on stdin; writes one JSON line per resource:
// {"index": i, "status": "ok" | "invalid" | "no-schema", "message": "..."}.
// Called by check_manifests.py, which decides what a "no-schema" means.

const PACKAGES = {
  'argoproj.io': '@kubernetes-models/argo-cd',
  'external-secrets.io': '@kubernetes-models/external-secrets',
  'generators.external-secrets.io': '@kubernetes-models/external-secrets',
  'karpenter.sh': '@kubernetes-models/karpenter',
  'karpenter.k8s.aws': '@kubernetes-models/karpenter',
  'monitoring.coreos.com': '@kubernetes-models/prometheus-operator',
};

async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const pkg = PACKAGES[group];
  if (!pkg || !/^[A-Za-z0-9]+$/.test(kind)) return null;
  try {
    const mod = await import(`${pkg}/${group}/${version}/${kind}`);
    return mod[kind] ?? null;
  } catch (e) {
    if (e && (e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'ERR_PACKAGE_PATH_NOT_EXPORTED')) return null;
    throw e;
  }
}

let input = '';
for await (const chunk of process.stdin) input += chunk;
const resources = JSON.parse(input);
for (const [index, resource] of resources.entries()) {
  const Model = await modelFor(String(resource.apiVersion ?? ''), String(resource.kind ?? ''));
  let line;
  if (!Model) {
    line = { index, status: 'no-schema', message: `no schema for ${resource.apiVersion} ${resource.kind}` };
  } else {
    try {
      new Model(resource).validate();
      line = { index, status: 'ok', message: '' };
    } catch (e) {
      line = { index, status: 'invalid', message: String(e?.message ?? e) };
    }
  }
  process.stdout.write(JSON.stringify(line) + '\n');
}
