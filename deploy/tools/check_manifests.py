#!/usr/bin/env python3
"""The manifest checks of deploy/check (run it through deploy/check, which installs the tools).

    check_manifests.py --kubectl PATH --help-dir DIR [--metrics FILE] [--promtool PATH]

1. Every kustomization under deploy/k8s/overlays and deploy/k8s/argocd builds.
2. Every rendered resource validates: Kubernetes kinds with kubernetes-validate --strict,
   custom resources against their operators' schemas, strictly too (validate-crs.mjs: the
   kubernetes-models validators, then their TypeScript types for unknown fields); a kind with
   neither fails unless it is in SKIPPED_KINDS (printed).
3. No secret data: no Secret, no secret-looking key or value in a ConfigMap or env, nothing
   that looks like a credential in any file under deploy/k8s, deploy/docker or .github.
4. The environment contract (deploy/k8s/env-contract.yaml): every variable each binary reads
   (DIR/<binary>.txt, its --help) is provided in every overlay, secrets only from Secrets that
   ExternalSecrets create, shared settings equal across workloads.
5. Workload policy: probes, restricted security context, resources, topology spread, PDB, HPA,
   ServiceAccount, termination grace >= preStop + SHUTDOWN_GRACE_MS, network flows exactly as
   intended (FLOWS), Argo CD applications that point at buildable paths and leave HPA replicas.
6. Monitoring: every metric name in the PrometheusRule and the Grafana dashboard is served by
   the binaries (FILE: the names seen on their /metrics), and promtool accepts the rules.
7. The architecture draft: a table of its names and values (DRAFT rows in draft()) checked
   against the rendered prod overlay and Argo CD tree; Helm-chart applications pinned.
Exit status 1 with every problem listed, 0 when all pass.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import pathlib
import re
import subprocess
import sys
import tempfile

import yaml
import kubernetes_validate
from kubernetes_validate.utils import SchemaNotFoundError

ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
TOOLS = ROOT / "deploy" / "tools"
KUBERNETES_VERSION = "1.33"  # the EKS version the runbooks pin (docs/runbooks/deployment.md)
NAMESPACE = "flash-ticket"

# Kinds validated by no schema at all. Empty: every kind we render has one (kubernetes-validate
# for Kubernetes, kubernetes-models for Argo CD, External Secrets, Karpenter, prometheus-operator).
# A new kind without a schema must be added here, deliberately, and shows up in the output.
SKIPPED_KINDS: dict[str, str] = {}

# The flows each workload may use, stated independently of the NetworkPolicies they check:
# (peer, port) pairs. "alb" = an ipBlock of the public subnets, "prometheus" = the monitoring
# namespace's Prometheus, "data" = an ipBlock of the data subnets (ElastiCache, RDS, Amazon MQ).
# DNS (kube-dns :53) is allowed to every pod by the namespace-wide allow-dns policy.
FLOWS = {
    "flash-gateway": {"in": {("alb", 3000), ("prometheus", 3000)}, "out": {("data", 6379), ("data", 5432)}},
    "flash-api": {"in": {("alb", 4000), ("prometheus", 4000)}, "out": {("data", 5432), ("data", 6379), ("data", 5671)}},
    # Redis beyond the "pay -> RabbitMQ": the worker's processor ledger lives there.
    "flash-pay": {"in": {("prometheus", 3100)}, "out": {("data", 5671), ("data", 6379)}},
    "flash-web": {"in": {("alb", 8080)}, "out": set()},
    "flash-migrate": {"in": set(), "out": {("data", 5432)}},
}
# What the sale-critical HPAs scale on besides CPU and memory (custom and external metrics of
# the Prometheus Adapter: deploy/k8s/argocd/*/platform.yaml, flash-tickets-prometheus-adapter).
SALE_METRICS = {
    "flash-gateway": {"http_requests_per_second", "queue_waiting_users"},
    "flash-api": {"http_requests_per_second"},
    "flash-pay": {"payments_pending"},
}
# A chart version as Argo CD takes it, exact: no range, no "latest", no "*".
PINNED_CHART = re.compile(r"v?\d+\.\d+\.\d+")
PUBLIC_SUBNETS = {"dev": "10.1.0.0/20", "prod": "10.0.0.0/20"}
DATA_SUBNETS = {"dev": "10.1.200.0/22", "prod": "10.0.200.0/22"}

SECRET_NAME = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|_URL|_KEY)$")
SECRET_VALUE_PATTERNS = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"(?i)aws_secret_access_key\s*[=:]\s*\S{20,}"), "an AWS secret key"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"), "a JWT"),
    (re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@'\"$]+:[^/\s@'\"$]+@"), "a URL with a password"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"), "a GitHub token"),
    # key: value where the key names a secret and the value is not an UPPER_CASE variable name
    (re.compile(r"(?m)^[ \t]*[\w.-]*(?i:password|secret|token)[\w.-]*[ \t]*[:=][ \t]*['\"]?(?![A-Z0-9_]+\b)[A-Za-z0-9+/=_-]{12,}"), "a literal secret"),
]
SCANNED_DIRS = ("deploy/k8s", "deploy/docker", "deploy/infra", ".github")

problems: list[str] = []


def problem(text: str) -> None:
    problems.append(text)
    print(f"  FAIL {text}")


def ok(text: str) -> None:
    print(f"  ok   {text}")


def docs_of(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def ident(d: dict) -> str:
    ns = d.get("metadata", {}).get("namespace")
    return f"{d.get('kind')}/{(ns + '/') if ns else ''}{d.get('metadata', {}).get('name')}"


# 1. builds ---------------------------------------------------------------------------------


def kustomizations() -> list[pathlib.Path]:
    found = []
    for base in (K8S / "overlays", K8S / "argocd"):
        for k in sorted(base.rglob("kustomization.yaml")):
            if (yaml.safe_load(k.read_text()) or {}).get("kind", "Kustomization") == "Kustomization":
                found.append(k.parent)
    return found


def build_all(kubectl: str) -> dict[pathlib.Path, list[dict]]:
    print("kustomize builds:")
    built = {}
    for d in kustomizations():
        rel = d.relative_to(ROOT)
        r = subprocess.run([kubectl, "kustomize", str(d)], capture_output=True, text=True)
        if r.returncode != 0:
            problem(f"{rel}: kubectl kustomize failed: {r.stderr.strip()}")
            continue
        built[d] = docs_of(r.stdout)
        ok(f"{rel} ({len(built[d])} resources)")
    return built


# 2. schemas --------------------------------------------------------------------------------


def validate(envs: dict[str, list[dict]]) -> None:
    print(f"schemas (Kubernetes {KUBERNETES_VERSION} strict; custom resources: kubernetes-models, strict):")
    custom: list[tuple[str, dict]] = []
    native = 0
    for env, docs in envs.items():
        for d in docs:
            try:
                kubernetes_validate.validate(d, KUBERNETES_VERSION, strict=True)
                native += 1
            except SchemaNotFoundError:
                custom.append((env, d))
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                problem(f"{env}: {ident(d)}: {path}: {e.message}")
    ok(f"{native} Kubernetes resources valid")
    if not custom:
        return
    r = subprocess.run(
        ["node", str(TOOLS / "validate-crs.mjs")],
        input=json.dumps([d for _, d in custom]),
        capture_output=True,
        text=True,
        cwd=TOOLS,
    )
    if r.returncode != 0:
        problem(f"validate-crs.mjs failed: {r.stderr.strip()}")
        return
    kinds_ok: set[str] = set()
    skipped: set[str] = set()
    for line in r.stdout.splitlines():
        res = json.loads(line)
        env, d = custom[res["index"]]
        kind = f"{d.get('apiVersion')} {d.get('kind')}"
        if res["status"] == "ok":
            kinds_ok.add(kind)
        elif res["status"] == "no-schema" and d.get("kind") in SKIPPED_KINDS:
            skipped.add(kind)
        else:
            problem(f"{env}: {ident(d)}: {res['message']}")
    ok(f"custom resources valid: {', '.join(sorted(kinds_ok))}")
    print(f"  skipped kinds (no schema): {', '.join(sorted(skipped)) or 'none'}")


# 3. secrets --------------------------------------------------------------------------------


def scan_files() -> None:
    print("no secret data in files:")
    count = 0
    for rel in SCANNED_DIRS:
        for f in sorted((ROOT / rel).rglob("*")):
            if not f.is_file() or "node_modules" in f.parts:
                continue
            text = f.read_text(errors="replace")
            count += 1
            if f.suffix in (".yaml", ".yml") and rel == "deploy/k8s":
                for d in docs_of(text):
                    if d.get("kind") == "Secret":
                        problem(f"{f.relative_to(ROOT)}: a Secret in git ({ident(d)}); use an ExternalSecret")
            for pattern, what in SECRET_VALUE_PATTERNS:
                for m in pattern.finditer(text):
                    snippet = m.group(0)
                    # GitHub Actions expressions are references, not values.
                    if "${{" in text[max(0, m.start() - 40) : m.end() + 5] and what == "a literal secret":
                        continue
                    line = text.count("\n", 0, m.start()) + 1
                    problem(f"{f.relative_to(ROOT)}:{line}: looks like {what}: {snippet[:40]}…")
    ok(f"{count} files scanned")


def check_rendered_secrets(env: str, docs: list[dict]) -> None:
    for d in docs:
        kind = d.get("kind")
        if kind == "Secret":
            problem(f"{env}: {ident(d)}: a Secret in the manifests; secrets come from ExternalSecrets only")
        if kind == "ConfigMap":
            for k, v in (d.get("data") or {}).items():
                if SECRET_NAME.search(k.upper()) and not k.endswith(".json"):
                    problem(f"{env}: {ident(d)}: key {k} looks like a secret; it belongs in Secrets Manager")
                for pattern, what in SECRET_VALUE_PATTERNS:
                    if pattern.search(f"{k}={v}"):
                        problem(f"{env}: {ident(d)}: {k} looks like {what}")
        if kind == "ExternalSecret":
            template = ((d.get("spec") or {}).get("target") or {}).get("template") or {}
            for k, v in (template.get("data") or {}).items():
                if "{{" not in str(v):
                    problem(f"{env}: {ident(d)}: template key {k} is a literal value")
        for c in containers_of(d):
            for e in c.get("env") or []:
                if "value" in e and SECRET_NAME.search(e["name"]):
                    problem(f"{env}: {ident(d)}: env {e['name']} has a literal value")


# 4. environment contract -------------------------------------------------------------------


def help_vars(help_dir: pathlib.Path, binary: str) -> tuple[list[str], set[str]]:
    """The variables a binary reads and, of those, the ones clap hides the value of."""
    text = (help_dir / f"{binary}.txt").read_text()
    names = re.findall(r"\[env: ([A-Z0-9_]+)[=\]]", text)
    hidden = set(re.findall(r"\[env: ([A-Z0-9_]+)\]", text))
    if not names:
        problem(f"{binary}: no [env: …] in its --help; cannot check its variables")
    return list(dict.fromkeys(names)), hidden


def pod_spec(d: dict) -> dict | None:
    spec = d.get("spec") or {}
    if d.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return (spec.get("template") or {}).get("spec")
    return None


def containers_of(d: dict) -> list[dict]:
    ps = pod_spec(d)
    return (ps.get("containers") or []) + (ps.get("initContainers") or []) if ps else []


def external_secret_keys(es: dict) -> set[str]:
    spec = es.get("spec") or {}
    keys = {x["secretKey"] for x in spec.get("data") or []}
    for df in spec.get("dataFrom") or []:
        gen = (df.get("sourceRef") or {}).get("generatorRef")
        if not gen or gen.get("kind") != "Password":
            problem(f"{ident(es)}: dataFrom other than a Password generator: its keys cannot be checked")
            continue
        produced = {"password"}
        for rw in df.get("rewrite") or []:
            rx = rw.get("regexp") or {}
            produced = {re.sub(rx.get("source", "$^"), rx.get("target", ""), k) for k in produced}
        keys |= produced
    return keys


def env_contract(envs: dict[str, list[dict]], help_dir: pathlib.Path) -> None:
    contract = yaml.safe_load((K8S / "env-contract.yaml").read_text())
    per_workload = set(contract.get("per_workload") or [])
    print("environment contract (variables from the binaries' --help):")
    for env, docs in envs.items():
        by_id = {(d.get("kind"), d["metadata"]["name"]): d for d in docs}
        secrets_made: dict[str, set[str]] = {}
        for d in docs:
            if d.get("kind") == "ExternalSecret":
                target = ((d.get("spec") or {}).get("target") or {}).get("name") or d["metadata"]["name"]
                secrets_made[target] = external_secret_keys(d)
        values: dict[str, dict[str, str]] = {}
        for binary, entry in contract["binaries"].items():
            reads, hidden = help_vars(help_dir, binary)
            unset = entry.get("unset") or {}
            for name in unset:
                if name not in reads:
                    problem(f"env-contract: {binary} no longer reads {name}; remove it from 'unset'")
            for wl in entry["workloads"]:
                kind, name, container = wl.split("/")
                d = by_id.get((kind, name))
                c = next((c for c in containers_of(d) if c["name"] == container), None) if d else None
                if c is None:
                    problem(f"{env}: {wl}: no such workload/container for {binary}")
                    continue
                provided: dict[str, tuple[str, str | None]] = {}  # name -> (source, value)
                for e in c.get("env") or []:
                    src = "secret" if (e.get("valueFrom") or {}).get("secretKeyRef") else "env"
                    provided[e["name"]] = (src, e.get("value"))
                for ef in c.get("envFrom") or []:
                    prefix = ef.get("prefix", "")
                    if "configMapRef" in ef:
                        cm = by_id.get(("ConfigMap", ef["configMapRef"]["name"]))
                        if cm is None:
                            problem(f"{env}: {wl}: ConfigMap {ef['configMapRef']['name']} is not in the overlay")
                            continue
                        for k, v in (cm.get("data") or {}).items():
                            provided[prefix + k] = ("configmap", str(v))
                    if "secretRef" in ef:
                        sname = ef["secretRef"]["name"]
                        if sname not in secrets_made:
                            problem(f"{env}: {wl}: Secret {sname} is made by no ExternalSecret of the overlay")
                            continue
                        for k in secrets_made[sname]:
                            provided[prefix + k] = ("secret", None)
                missing = [v for v in reads if v not in provided and v not in unset]
                if missing:
                    problem(f"{env}: {wl}: {binary} reads {', '.join(missing)}, which the overlay does not provide")
                for v in unset:
                    if v in provided:
                        problem(f"{env}: {wl}: {v} is provided, yet env-contract says it stays unset ({unset[v]})")
                for v, (src, value) in provided.items():
                    if v not in reads:
                        problem(f"{env}: {wl}: {v} is provided but {binary} does not read it")
                    is_secret = v in hidden or SECRET_NAME.search(v)
                    if is_secret and src != "secret":
                        problem(f"{env}: {wl}: {v} is a secret but comes from a {src}")
                    if src == "configmap":
                        values.setdefault(v, {})[wl] = value
                ok(f"{env}: {wl}: {len(reads) - len(unset)} of {len(reads)} variables provided, {len(unset)} unset on purpose")
        for v, by_wl in sorted(values.items()):
            if v not in per_workload and len(set(by_wl.values())) > 1:
                problem(f"{env}: {v} differs between workloads: {by_wl}")


# 5. workload policy ------------------------------------------------------------------------


def ms_of(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def policy(env: str, docs: list[dict]) -> None:
    print(f"workload policy ({env}):")
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d.get("kind"), []).append(d)
    cms = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}
    sas = {d["metadata"]["name"] for d in by_kind.get("ServiceAccount", [])}
    policies = by_kind.get("NetworkPolicy", [])
    deny = [p for p in policies if p["spec"].get("podSelector") == {} and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    if not deny:
        problem(f"{env}: no default-deny NetworkPolicy (ingress and egress)")
    workloads = [d for d in by_kind.get("Deployment", []) + by_kind.get("Job", []) if d["metadata"].get("namespace") == NAMESPACE]
    for d in workloads:
        name, kind = d["metadata"]["name"], d["kind"]
        ps = pod_spec(d) or {}
        labels = ((d["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
        where = f"{env}: {kind}/{name}"
        before = len(problems)
        sa = ps.get("serviceAccountName")
        if not sa or sa == "default" or sa not in sas:
            problem(f"{where}: needs its own ServiceAccount (has {sa!r})")
        if ps.get("automountServiceAccountToken") is not False:
            problem(f"{where}: mounts a service account token it does not need")
        psc = ps.get("securityContext") or {}
        if psc.get("runAsNonRoot") is not True or (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problem(f"{where}: pod securityContext must set runAsNonRoot and seccomp RuntimeDefault")
        for c in ps.get("containers") or []:
            sc = c.get("securityContext") or {}
            if not (sc.get("allowPrivilegeEscalation") is False and sc.get("readOnlyRootFilesystem") is True
                    and (sc.get("capabilities") or {}).get("drop") == ["ALL"] and sc.get("runAsNonRoot") is True):
                problem(f"{where}/{c['name']}: securityContext not restricted (no escalation, read-only root, drop ALL, non-root)")
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set((res.get(part) or {}).keys()):
                    problem(f"{where}/{c['name']}: resources.{part} needs cpu and memory")
            env_values = {}
            for ef in c.get("envFrom") or []:
                if "configMapRef" in ef and ef["configMapRef"]["name"] in cms:
                    env_values.update(cms[ef["configMapRef"]["name"]].get("data") or {})
            grace = ps.get("terminationGracePeriodSeconds", 30)
            pre_stop = (((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0)
            shutdown_ms = ms_of(env_values.get("SHUTDOWN_GRACE_MS"))
            needed = pre_stop + (shutdown_ms or 0) / 1000 + 1
            if grace < needed:
                problem(f"{where}: terminationGracePeriodSeconds {grace} < preStop {pre_stop} s + SHUTDOWN_GRACE_MS {shutdown_ms} ms + 1 s")
            if kind == "Deployment":
                probes = {p: (c.get(p) or {}).get("httpGet", {}).get("path") for p in ("startupProbe", "readinessProbe", "livenessProbe")}
                if probes != {"startupProbe": "/live", "readinessProbe": "/ready", "livenessProbe": "/live"}:
                    problem(f"{where}/{c['name']}: probes must be startup /live, readiness /ready, liveness /live (are {probes})")
        if kind == "Deployment":
            if "replicas" in d["spec"]:
                problem(f"{where}: sets spec.replicas, which the HPA owns")
            tsc = ps.get("topologySpreadConstraints") or []
            if not any(t.get("topologyKey") == "topology.kubernetes.io/zone" for t in tsc):
                problem(f"{where}: no topology spread across zones")
            pdbs = [p for p in by_kind.get("PodDisruptionBudget", []) if selects(p["spec"].get("selector"), labels)]
            if len(pdbs) != 1:
                problem(f"{where}: needs exactly one PodDisruptionBudget (has {len(pdbs)})")
            hpas = [h for h in by_kind.get("HorizontalPodAutoscaler", []) if h["spec"]["scaleTargetRef"].get("name") == name
                    and h["spec"]["scaleTargetRef"].get("kind") == "Deployment"]
            if len(hpas) != 1:
                problem(f"{where}: needs exactly one HorizontalPodAutoscaler (has {len(hpas)})")
            else:
                h = hpas[0]["spec"]
                metrics = {m.get("resource", {}).get("name") for m in h.get("metrics", []) if m.get("type") == "Resource"}
                # min 2 (more during a pre-sale warm-up: overlays/prod/warmup), max 10
                if not (2 <= (h.get("minReplicas") or 1) <= 10 and h.get("maxReplicas") == 10) or metrics != {"cpu", "memory"} \
                        or not {"scaleUp", "scaleDown"} <= set((h.get("behavior") or {}).keys()):
                    problem(f"{where}: HPA must be min >= 2 / max 10 on cpu and memory with scale-up and scale-down behaviour")
                beyond = {(m.get("pods") or m.get("external") or {}).get("metric", {}).get("name") for m in h.get("metrics", []) if m.get("type") in ("Pods", "External")}
                if name in SALE_METRICS and not SALE_METRICS[name] <= beyond:
                    problem(f"{where}: HPA must also scale on {sorted(SALE_METRICS[name])} (has {sorted(x for x in beyond if x)})")
        flows(env, where, name, labels, policies)
        if len(problems) == before:
            ok(f"{where}")


def selects(selector: dict | None, labels: dict) -> bool:
    if not selector:
        return False
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()) and not selector.get("matchExpressions")


def peer_name(env: str, peer: dict) -> str:
    if "ipBlock" in peer:
        cidr = peer["ipBlock"].get("cidr")
        if cidr == PUBLIC_SUBNETS[env]:
            return "alb"
        if cidr == DATA_SUBNETS[env]:
            return "data"
        return f"ipBlock {cidr}"
    ns = ((peer.get("namespaceSelector") or {}).get("matchLabels") or {}).get("kubernetes.io/metadata.name")
    pod = (peer.get("podSelector") or {}).get("matchLabels") or {}
    if ns == "monitoring" and pod == {"app.kubernetes.io/name": "prometheus"}:
        return "prometheus"
    if ns == "kube-system" and pod == {"k8s-app": "kube-dns"}:
        return "dns"
    return json.dumps(peer, sort_keys=True)


def flows(env: str, where: str, name: str, labels: dict, policies: list[dict]) -> None:
    expected = FLOWS.get(name)
    if expected is None:
        problem(f"{where}: no intended flows declared (FLOWS in check_manifests.py)")
        return
    seen = {"in": set(), "out": set()}
    for p in policies:
        spec = p["spec"]
        if not selects(spec.get("podSelector"), labels) and spec.get("podSelector") != {}:
            continue
        for direction, key, peers_key in (("in", "ingress", "from"), ("out", "egress", "to")):
            for rule in spec.get(key) or []:
                peers = rule.get(peers_key)
                ports = rule.get("ports")
                if not peers or not ports:
                    problem(f"{where}: NetworkPolicy {p['metadata']['name']} has a {key} rule open to any peer or port")
                    continue
                for peer in peers:
                    for port in ports:
                        seen[direction].add((peer_name(env, peer), port.get("port")))
    seen["out"] -= {("dns", 53)}
    for direction in ("in", "out"):
        extra = seen[direction] - expected[direction]
        missing = expected[direction] - seen[direction]
        if extra:
            problem(f"{where}: {direction}bound flows nobody intended: {sorted(extra)}")
        if missing:
            problem(f"{where}: {direction}bound flows it needs are not allowed: {sorted(missing)}")


def argocd(envs_argo: dict[str, list[dict]], built: dict[pathlib.Path, list[dict]]) -> None:
    print("Argo CD applications:")
    for env, docs in envs_argo.items():
        for d in docs:
            if d.get("kind") != "Application":
                continue
            name, spec = d["metadata"]["name"], d["spec"]
            if "chart" in spec["source"]:
                src = spec["source"]
                if not PINNED_CHART.fullmatch(str(src.get("targetRevision", ""))):
                    problem(f"{env}: Application {name}: chart {src['chart']} is not pinned to a version (targetRevision {src.get('targetRevision')!r})")
                elif "argocd.argoproj.io/sync-wave" not in (d["metadata"].get("annotations") or {}):
                    problem(f"{env}: Application {name}: no sync wave")
                else:
                    ok(f"{env}: Application {name} -> chart {src['chart']} {src['targetRevision']} ({src['repoURL']})")
                continue
            path = ROOT / spec["source"]["path"]
            if path not in built:
                problem(f"{env}: Application {name}: path {spec['source']['path']} is not a kustomization that builds")
                continue
            if "argocd.argoproj.io/sync-wave" not in (d["metadata"].get("annotations") or {}) and name != "flash-tickets":
                problem(f"{env}: Application {name}: no sync wave")
            has_deployment = any(x.get("kind") == "Deployment" for x in built[path])
            ignores = [i for i in spec.get("ignoreDifferences") or [] if i.get("kind") == "Deployment" and "/spec/replicas" in (i.get("jsonPointers") or [])]
            if has_deployment and (not ignores or "RespectIgnoreDifferences=true" not in (spec.get("syncPolicy") or {}).get("syncOptions", [])):
                problem(f"{env}: Application {name}: deploys a Deployment but does not ignore HPA-managed replicas")
            ok(f"{env}: Application {name} -> {spec['source']['path']}")


# 6. monitoring -----------------------------------------------------------------------------

PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "rate", "irate", "increase", "histogram_quantile",
    "and", "or", "unless", "on", "ignoring", "group_left", "group_right", "offset", "bool", "le", "abs",
    "clamp_min", "clamp_max", "delta", "deriv", "topk", "bottomk", "time", "vector", "scalar", "label_replace",
}


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)                    # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)                   # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {n for n in names if n not in PROMQL_WORDS and not re.fullmatch(r"\d.*|e\d*", n)}


def monitoring(docs: list[dict], metrics_file: pathlib.Path | None, promtool: str | None) -> None:
    print("monitoring (metric names against the binaries' /metrics):")
    exprs: list[tuple[str, str]] = []
    records: set[str] = set()
    rules = [d for d in docs if d.get("kind") == "PrometheusRule"]
    for r in rules:
        for g in r["spec"]["groups"]:
            for rule in g["rules"]:
                exprs.append((f"PrometheusRule {g['name']}/{rule.get('alert') or rule.get('record')}", rule["expr"]))
                if "record" in rule:
                    records.add(rule["record"])
    for d in docs:
        if d.get("kind") == "ConfigMap" and "grafana_dashboard" in (d["metadata"].get("labels") or {}):
            for fname, body in (d.get("data") or {}).items():
                dash = json.loads(body)
                for p in dash.get("panels", []):
                    for t in p.get("targets", []):
                        exprs.append((f"dashboard {fname} '{p.get('title')}'", t["expr"]))
    if metrics_file is None:
        problem("no /metrics names given (--metrics): metric names not checked")
    else:
        served = set(metrics_file.read_text().split())
        known = set(served) | records
        for name in list(served):
            known |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        before = len(problems)
        for where, expr in exprs:
            for n in sorted(metric_names(expr) - known):
                problem(f"{where}: metric {n} is not served by any binary")
        if len(problems) == before:
            ok(f"{len(exprs)} expressions use only served metrics")
    if promtool:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump({"groups": [g for r in rules for g in r["spec"]["groups"]]}, f)
        r = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
        pathlib.Path(f.name).unlink()
        if r.returncode != 0:
            problem(f"promtool check rules: {r.stdout.strip()} {r.stderr.strip()}")
        else:
            ok("promtool check rules: " + " ".join(r.stdout.split()))


# 7. the architecture draft ----------------------------------------------------------------
# ../shared/reference/architecture-draft.md, section by section: what prod must carry. A
# deliberate deviation is not silently tolerated here: it is listed in deploy/k8s/README.md and
# its row states the value we chose instead (marked "deviation").

DRAFT_ACM = ("00596951-525b-4bdd-8451-a7a1081fa19b", "8f0b62ea-3544-48c2-824d-bea976bb49af")


def _one(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d.get("kind") == kind and d["metadata"]["name"] == name]
    return found[0] if len(found) == 1 else {}


def _dig(d, *path):
    for p in path:
        if isinstance(d, dict):
            d = d.get(p)
        elif isinstance(d, list) and isinstance(p, int) and p < len(d):
            d = d[p]
        else:
            return None
    return d


def _svc_port(docs, name):
    return _dig(_one(docs, "Service", name), "spec", "ports", 0, "port")


def _req(nodepool, key):
    for r in _dig(nodepool, "spec", "template", "spec", "requirements") or []:
        if r.get("key") == key:
            return sorted(r.get("values") or [])
    return None


def _host_backend(docs, host):
    ing = _one(docs, "Ingress", "flash-tickets")
    for rule in _dig(ing, "spec", "rules") or []:
        if rule.get("host") == host:
            for path in _dig(rule, "http", "paths") or []:
                if path.get("path") == "/":
                    svc = path["backend"]["service"]
                    port = svc["port"].get("number") or _svc_port(docs, svc["name"])
                    return f"{svc['name']}:{port}"
    return None


def _cm_value(docs, prefix, key):
    values = {d["data"][key] for d in docs if d.get("kind") == "ConfigMap" and d["metadata"]["name"].startswith(prefix) and key in (d.get("data") or {})}
    return values.pop() if len(values) == 1 else sorted(str(v) for v in values)


def _app(argo, name):
    return _one(argo, "Application", name)


def _cfn_default(template: str, param: str):
    text = (ROOT / "deploy" / "infra" / template).read_text() if (ROOT / "deploy" / "infra" / template).is_file() else ""
    m = re.search(rf"(?m)^  {param}:\n(?:    .*\n)*?    Default: ([^\n]+)", text)
    return m.group(1).strip().strip('"') if m else None


def draft(prod: list[dict], argo: list[dict]) -> None:
    print("the architecture draft's names and values (prod):")
    np = _one(prod, "NodePool", "default")
    nc = _one(prod, "EC2NodeClass", "default")
    ingress = _one(prod, "Ingress", "flash-tickets")
    lb_attrs = _dig(ingress, "metadata", "annotations", "alb.ingress.kubernetes.io/load-balancer-attributes") or ""
    certs = _dig(ingress, "metadata", "annotations", "alb.ingress.kubernetes.io/certificate-arn") or ""
    images = sorted({c["image"].split(":")[0] for d in prod for c in containers_of(d)})
    workload_ns = sorted({d["metadata"].get("namespace") for d in prod if d.get("kind") in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ExternalSecret", "Job") and d["metadata"]["name"].startswith("flash-")})
    hpa = lambda n: [_dig(_one(prod, "HorizontalPodAutoscaler", n), "spec", k) for k in ("minReplicas", "maxReplicas")]
    alias = (_dig(nc, "spec", "amiSelectorTerms", 0, "alias") or "")
    karp = _app(argo, "flash-tickets-karpenter-controller")
    rows = [
        # (draft section, what, actual, expected)
        ("§1", "ECR repositories", [i.split("/", 1)[1] for i in images], ["flash-tickets/api", "flash-tickets/gateway", "flash-tickets/pay", "flash-tickets/web"]),
        ("§2", "Ingress host www.highgarden.cloud", _host_backend(prod, "www.highgarden.cloud"), "flash-web:80"),
        ("§2", "Ingress host api.highgarden.cloud", _host_backend(prod, "api.highgarden.cloud"), "flash-api:4000"),
        ("§2", "Ingress host gateway.highgarden.cloud", _host_backend(prod, "gateway.highgarden.cloud"), "flash-gateway:3000"),
        ("§2", "ALB certificates (ACM)", all(c in certs for c in DRAFT_ACM), True),
        ("§2", "Argo CD admin UI Ingress", _dig(_one(prod, "Ingress", "argocd-server"), "spec", "rules", 0, "host"), "argocd.highgarden.cloud"),
        ("§2", "EKS cluster (deploy/infra/eks.yaml)", _cfn_default("eks.yaml", "ClusterName"), "flash-tickets-eks"),
        ("§2", "WAF web ACL in front of the ALB (deviation: not in the draft)", "regional/webacl/flash-tickets-alb/" in (_dig(ingress, "metadata", "annotations", "alb.ingress.kubernetes.io/wafv2-acl-arn") or ""), True),
        ("§3", "NodePool default limits.cpu", str(_dig(np, "spec", "limits", "cpu")), "1000"),
        ("§3", "NodePool default zones", _req(np, "topology.kubernetes.io/zone"), ["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"]),
        ("§3", "NodePool default offers spot t3.medium", "spot" in (_req(np, "karpenter.sh/capacity-type") or []) and "t3.medium" in (_req(np, "node.kubernetes.io/instance-type") or []), True),
        ("§3", "EC2NodeClass role", _dig(nc, "spec", "role"), "KarpenterNodeInstanceRole-flash-tickets-eks"),
        ("§3", "EC2NodeClass discovery tag", [_dig(nc, "spec", k, 0, "tags", "karpenter.sh/discovery") for k in ("subnetSelectorTerms", "securityGroupSelectorTerms")], ["flash-tickets-eks", "flash-tickets-eks"]),
        ("§3", "EC2NodeClass AMI pinned (deviation: an AL2023 release alias, not the AL2 AMI id)", bool(re.fullmatch(r"al2023@v\d{8}", alias)), True),
        ("§3", "Karpenter IAM roles (deploy/infra/karpenter.yaml)", [f"{p}-{_cfn_default('karpenter.yaml', 'ClusterName')}" for p in ("KarpenterControllerRole", "KarpenterNodeInstanceRole")]
            if "KarpenterControllerRole-${ClusterName}" in (ROOT / "deploy/infra/karpenter.yaml").read_text() and "KarpenterNodeInstanceRole-${ClusterName}" in (ROOT / "deploy/infra/karpenter.yaml").read_text() else None,
            ["KarpenterControllerRole-flash-tickets-eks", "KarpenterNodeInstanceRole-flash-tickets-eks"]),
        ("§3", "Karpenter Helm release: chart, namespace, cluster", [_dig(karp, "spec", "source", "chart"), _dig(karp, "spec", "destination", "namespace"),
            _dig(karp, "spec", "source", "helm", "valuesObject", "settings", "clusterName")], ["karpenter", "karpenter", "flash-tickets-eks"]),
        ("§3", "HPA flash-api min/max", hpa("flash-api"), [2, 10]),
        ("§3", "HPA flash-gateway min/max", hpa("flash-gateway"), [2, 10]),
        ("§3", "HPA flash-pay min/max", hpa("flash-pay"), [2, 10]),
        ("§3", "CloudWatch observability add-on", _dig(_app(argo, "flash-tickets-cloudwatch-observability"), "spec", "source", "chart"), "amazon-cloudwatch-observability"),
        ("§4", "namespace of every workload", workload_ns, [NAMESPACE]),
        ("§4", "namespace flash-ticket exists", bool(_one(prod, "Namespace", "flash-ticket")), True),
        ("§4", "Service ports web/gateway/api/pay", [_svc_port(prod, n) for n in ("flash-web", "flash-gateway", "flash-api", "flash-pay")], [80, 3000, 4000, 3100]),
        ("§5", "REDIS_HOST: the ElastiCache endpoint (TLS certificate name)", _cm_value(prod, "flash-", "REDIS_HOST"), "master.flash-tickets-redis.rrzszk.apn2.cache.amazonaws.com"),
        ("§5", "REDIS_TLS", _cm_value(prod, "flash-", "REDIS_TLS"), "true"),
        ("§7", "ALB zonal shift enabled (runbook: an Availability Zone)", "zonal_shift.config.enabled=true" in lb_attrs, True),
        ("§9", "app of apps", [_dig(_app(argo, "flash-tickets"), "spec", "source", "path")], ["deploy/k8s/argocd/prod"]),
        ("§9", "Argo CD Applications", sorted(n for n in ("flash-tickets-api", "flash-tickets-gateway", "flash-tickets-pay", "flash-tickets-web") if _app(argo, n)),
            ["flash-tickets-api", "flash-tickets-gateway", "flash-tickets-pay", "flash-tickets-web"]),
        ("§9", "application destinations", sorted({_dig(_app(argo, n), "spec", "destination", "namespace") for n in ("flash-tickets-api", "flash-tickets-gateway", "flash-tickets-pay", "flash-tickets-web")}), [NAMESPACE]),
    ]
    for section, what, actual, expected in rows:
        if actual == expected:
            ok(f"{section:4} {what}: {expected}")
        else:
            problem(f"draft {section} {what}: expected {expected!r}, rendered {actual!r}")


def draft_self_test(prod: list[dict], argo: list[dict]) -> None:
    """The draft table can fail: a copy of prod with three of the legacy values must be caught."""
    global problems
    bad = copy.deepcopy(prod)
    for d in bad:
        if d.get("kind") == "Service" and d["metadata"]["name"] == "flash-web":
            d["spec"]["ports"][0]["port"] = 8080
        if d.get("kind") == "NodePool":
            d["spec"]["limits"]["cpu"] = "32"
        if d.get("kind") == "EC2NodeClass":
            d["spec"]["amiSelectorTerms"] = [{"alias": "al2023@latest"}]
    saved, problems = problems, []
    with contextlib.redirect_stdout(io.StringIO()):
        draft(bad, argo)
    caught, problems = problems, saved
    for expected in ("Service ports web/gateway/api/pay", "NodePool default limits.cpu", "EC2NodeClass AMI pinned"):
        if not any(expected in c for c in caught):
            problem(f"draft self-test: a prod with the legacy value was not caught: {expected}")
    ok(f"self-test: a prod with web :8080, 32 CPUs and al2023@latest fails {len(caught)} rows")


def sale_window(envs: dict[str, list[dict]], envs_argo: dict[str, list[dict]]) -> None:
    """The sale window is one thing: the NodePool's no-disruption budget (for every graceful
    reason) and every AppProject's deny sync window cover the same hours, and no node expires."""
    print("sale window (Karpenter budgets, Argo CD sync windows):")
    for env in sorted(set(envs) & set(envs_argo)):
        before = len(problems)
        windows = set()
        for np in (d for d in envs[env] if d.get("kind") == "NodePool"):
            name = np["metadata"]["name"]
            if np["spec"]["template"]["spec"].get("expireAfter") != "Never":
                problem(f"{env}: NodePool {name}: expireAfter must be Never (v1 expiration ignores disruption budgets)")
            zero = [b for b in np["spec"]["disruption"].get("budgets") or [] if str(b.get("nodes")) == "0" and b.get("schedule")]
            if len(zero) != 1:
                problem(f"{env}: NodePool {name}: needs exactly one scheduled budget of 0 nodes (the sale window)")
                continue
            b = zero[0]
            if b.get("reasons") and set(b["reasons"]) != {"Empty", "Drifted", "Underutilized"}:
                problem(f"{env}: NodePool {name}: the sale-window budget leaves out reasons: {b['reasons']}")
            windows.add((b["schedule"], b["duration"]))
        for proj in (d for d in envs_argo[env] if d.get("kind") == "AppProject"):
            deny = [(w["schedule"], w["duration"]) for w in proj["spec"].get("syncWindows") or [] if w.get("kind") == "deny"]
            if not deny:
                problem(f"{env}: AppProject {proj['metadata']['name']}: no deny sync window for the sale")
            windows |= set(deny)
        if len(windows) != 1:
            problem(f"{env}: the NodePool budget and the sync windows disagree about the sale window: {sorted(windows)}")
        if len(problems) == before:
            ok(f"{env}: one sale window {windows.pop()} in every NodePool budget and AppProject; nodes never expire")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kubectl", required=True)
    ap.add_argument("--help-dir", required=True, type=pathlib.Path)
    ap.add_argument("--metrics", type=pathlib.Path)
    ap.add_argument("--promtool")
    args = ap.parse_args()

    built = build_all(args.kubectl)
    envs = {p.name: built[p] for p in sorted((K8S / "overlays").iterdir()) if p in built}
    envs_argo = {p.name: built[p] for p in sorted((K8S / "argocd").iterdir()) if p in built}
    if set(envs) != {"dev", "prod"}:
        problem(f"overlays: expected dev and prod, built {sorted(envs)}")
    validate({**{f"overlays/{k}": v for k, v in envs.items()}, **{f"argocd/{k}": v for k, v in envs_argo.items()}})
    scan_files()
    print("no secret data in rendered manifests:")
    before = len(problems)
    for env, docs in {**{f"overlays/{k}": v for k, v in envs.items()}, **{f"argocd/{k}": v for k, v in envs_argo.items()}}.items():
        check_rendered_secrets(env, docs)
    if len(problems) == before:
        ok("no Secret, no secret-looking ConfigMap key or value, no literal secret env")
    env_contract(envs, args.help_dir)
    for env, docs in envs.items():
        policy(env, docs)
    argocd(envs_argo, built)
    if "prod" in envs and "prod" in envs_argo:
        draft(envs["prod"], envs_argo["prod"])
        draft_self_test(envs["prod"], envs_argo["prod"])
    sale_window(envs, envs_argo)
    for env, docs in envs.items():
        monitoring(docs, args.metrics, args.promtool)
        break  # the base monitoring is the same in every overlay
    if problems:
        print(f"\n{len(problems)} problem(s) in the manifests")
        return 1
    print("\nmanifests: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
