#!/usr/bin/env python3
"""Runs the runbooks' commands and checks the ones that need the cluster (deploy/check calls it
with the local system set up).

    run_runbooks.py --scratch DIR --rendered FILE docs/runbooks/*.md

Every fenced block of shell in a runbook carries a tag after the language:

    ```sh ci        runs here, against the local PostgreSQL, Redis, RabbitMQ and pods
    ```sh cluster   needs the EKS cluster, AWS or the GitHub remote: checked, not run

An untagged shell block fails the check: each command is either run or marked. The `ci`
blocks of one runbook run in order in one bash process (set -euo pipefail) with the
repository's deploy/ and docs/ copied to DIR/<runbook>, so a runbook may edit files (an image
tag bump) without touching the working tree. Blocks in other languages (text, promql) are not
commands.

A `cluster` block is checked against what it would act on (FILE: every rendered resource of
the overlays and Argo CD trees, as YAML; deploy/infra/*.yaml and deploy/lambda/template.yaml):
  - it parses (`bash -n`);
  - every kind/name it names (deployment/flash-api, hpa/flash-pay, …) is a rendered resource,
    every namespace (-n) is one the manifests or the Argo CD applications use, every
    `argocd app` argument is a rendered Application, every label selector (-l) matches the
    labels of a rendered resource or a node label the NodePool sets;
  - every `kubectl … -o jsonpath='{.spec…}'` of a named resource reads a field it has;
  - every CloudFormation deployment (`aws cloudformation deploy`, `sam deploy`) names a template
    that exists and gives every parameter without a default and no unknown one; every stack
    output it reads (`out STACK KEY`) is an output of that stack's template;
  - every AWS resource it names (--replication-group-id, --db-instance-identifier,
    --cluster-name, --broker-name, --stack-name, --secret-id …) is one the templates or the
    runbooks themselves create;
  - it pushes to no protected branch (main, release): changes go through pull requests;
  - it is followed, before the next block or heading, by a line `Expected: …` (what a correct
    run prints) and a line `Rollback: …` (how to undo it, or why nothing needs undoing).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import yaml

FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
SHELLS = {"sh", "bash", "shell", "console"}
# kind/name as kubectl takes it; not a path (deploy/k8s/…): nothing path-like around it.
REF = re.compile(r"(?<![\w/.-])(deployment|deploy|hpa|pdb|job|svc|service|nodepool|ec2nodeclass|application|app|networkpolicy|externalsecret|ingress|configmap|cm|serviceaccount|sa|secretstore)/([a-z0-9][a-z0-9.-]*)(?![\w/])")
KIND = {"deploy": "deployment", "svc": "service", "app": "application", "cm": "configmap", "sa": "serviceaccount",
        "hpa": "horizontalpodautoscaler", "pdb": "poddisruptionbudget"}
# kubectl get KIND NAME (a space instead of the slash), for the jsonpath check
KUBECTL_GET = re.compile(r"kubectl(?:\s+-n\s+\S+)?\s+get\s+([a-z]+)\s+([a-z0-9][a-z0-9.-]*)\b[^\n]*?-o\s+jsonpath='([^']*)'")
NAMESPACE_FLAG = re.compile(r"(?:\s-n|--namespace)[ =]([a-z0-9][a-z0-9-]*)")
LABEL_FLAG = re.compile(r"\s(?:-l|--selector)[ =]([^\s]+)")
REF_KINDS = set(REF.pattern.split("(", 2)[2].split(")")[0].split("|"))
# Resources a step may read that no manifest of ours renders: who makes them.
EXTERNAL_RESOURCES = {("configmap", "amazon-vpc-cni"): "EKS's VPC CNI add-on (deploy/infra/eks.yaml)"}
# Labels nobody renders that a step may still select on: the nodes' well-known labels (their
# values checked against the NodePool) and the labels of charts the platform installs.
CHART_LABELS = {("app.kubernetes.io/name", "karpenter"): "the karpenter chart's controller pods"}
NODE_LABELS = {"topology.kubernetes.io/zone", "karpenter.sh/nodepool", "karpenter.sh/capacity-type", "node.kubernetes.io/instance-type"}
# AWS CLI flags that name a resource the templates (or the runbooks) create.
AWS_NAME_FLAGS = ("--replication-group-id", "--db-instance-identifier", "--cluster-name", "--broker-name",
                  "--stack-name", "--secret-id", "--repository-name", "--queue-name")


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics (!Ref, !Sub, …) as {tag: value}."""


def _intrinsic(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {suffix: value}


CfnLoader.add_multi_constructor("!", _intrinsic)


class Template:
    def __init__(self, path: pathlib.Path):
        self.path = path
        self.doc = yaml.load(path.read_text(), Loader=CfnLoader) or {}
        params = self.doc.get("Parameters") or {}
        self.params = set(params)
        self.required = {k for k, v in params.items() if "Default" not in (v or {})}
        self.defaults = {k: str(v["Default"]) for k, v in params.items() if "Default" in (v or {})}
        self.outputs = set(self.doc.get("Outputs") or {})

    def names(self) -> set[str]:
        """Every string the template's resources carry, !Sub resolved with the parameter defaults."""
        found: set[str] = set()

        def sub(s: str) -> str:
            return re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: self.defaults.get(m.group(1), m.group(0)), s)

        def walk(x):
            if isinstance(x, dict):
                if set(x) == {"Sub"}:
                    v = x["Sub"]
                    walk(sub(v if isinstance(v, str) else v[0]))
                    return
                if set(x) == {"Ref"} and x["Ref"] in self.defaults:
                    found.add(self.defaults[x["Ref"]])
                    return
                for v in x.values():
                    walk(v)
            elif isinstance(x, list):
                for v in x:
                    walk(v)
            elif isinstance(x, str):
                found.add(x)

        walk(self.doc.get("Resources") or {})
        return found


def flag_values(body: str, flag: str) -> list[str]:
    return re.findall(rf"{re.escape(flag)}[ =]\"?([A-Za-z0-9][\w./:-]*)", body)


def logical_lines(body: str) -> list[str]:
    return body.replace("\\\n", " ").splitlines()


class Rendered:
    def __init__(self, path: pathlib.Path):
        self.docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        self.names = {f"{d['kind'].lower()}/{d['metadata']['name']}" for d in self.docs}
        self.namespaces = {d["metadata"].get("namespace") for d in self.docs} | {
            d["metadata"]["name"] for d in self.docs if d["kind"] == "Namespace"} | {
            (d.get("spec") or {}).get("destination", {}).get("namespace") for d in self.docs if d["kind"] == "Application"}
        self.namespaces.discard(None)
        self.applications = {d["metadata"]["name"] for d in self.docs if d["kind"] == "Application"}
        self.labels: set[tuple[str, str]] = set()
        for d in self.docs:
            for labels in ((d.get("metadata") or {}).get("labels"), (((d.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels")):
                self.labels |= set((labels or {}).items())
        self.node_values: dict[str, set[str]] = {k: set() for k in NODE_LABELS}
        for d in self.docs:
            if d["kind"] == "NodePool":
                self.node_values["karpenter.sh/nodepool"].add(d["metadata"]["name"])
                for r in d["spec"]["template"]["spec"].get("requirements") or []:
                    if r["key"] in self.node_values:
                        self.node_values[r["key"]] |= set(r.get("values") or [])

    def resource(self, kind: str, name: str) -> dict | None:
        for d in self.docs:
            if d["kind"].lower() == kind and d["metadata"]["name"] == name:
                return d
        return None


def has_path(d, path: str) -> bool:
    for part in [p for p in path.split(".") if p]:
        m = re.fullmatch(r"([^\[]+)(\[(\d+)\])?", part)
        if not m or not isinstance(d, dict) or m.group(1) not in d:
            return False
        d = d[m.group(1)]
        if m.group(3) is not None:
            if not isinstance(d, list) or int(m.group(3)) >= len(d):
                return False
            d = d[int(m.group(3))]
    return True


def check_cluster_block(where: str, body: str, after: str, r: Rendered, templates: dict[str, Template],
                        stacks: dict[str, str], aws_names: set[str]) -> list[str]:
    fails = []
    p = subprocess.run(["bash", "-n"], input=body, text=True, capture_output=True)
    if p.returncode != 0:
        fails.append(f"cluster block is not valid bash: {p.stderr.strip()}")
    for kind, name in REF.findall(body):
        if f"{KIND.get(kind, kind)}/{name}" not in r.names:
            fails.append(f"{kind}/{name} is not in the rendered manifests")
    for ns in NAMESPACE_FLAG.findall(body):
        if ns not in r.namespaces:
            fails.append(f"namespace {ns} is used by no rendered resource or Application")
    for line in logical_lines(body):
        m = re.search(r"\bargocd app (?:get|diff|sync|wait|set|history|rollback|manifests|unset)\s+(.*)", line)
        if m:
            for word in shlex.split(m.group(1).split("#")[0]):
                if word.startswith("-"):
                    break
                if word not in r.applications:
                    fails.append(f"argocd app {word}: no such Application in the rendered Argo CD trees")
    for selector in LABEL_FLAG.findall(body):
        for term in selector.strip("'\"").split(","):
            if "=" not in term:
                continue
            k, v = term.split("=", 1)
            if k in NODE_LABELS:
                if v not in r.node_values[k]:
                    fails.append(f"-l {term}: no NodePool launches nodes with {k}={v}")
            elif (k, v) not in r.labels and (k, v) not in CHART_LABELS:
                fails.append(f"-l {term}: no rendered resource carries that label")
    for kind, name, jsonpath in KUBECTL_GET.findall(body):
        d = r.resource(KIND.get(kind, kind), name)
        if d is None and kind in REF_KINDS and (kind, name) not in EXTERNAL_RESOURCES:
            fails.append(f"kubectl get {kind} {name}: not in the rendered manifests")
        for path in re.findall(r"\{(\.(?:spec|metadata)[^}]*)\}", jsonpath):
            if d is not None and not has_path(d, path):
                fails.append(f"{kind} {name} has no field {path}")
    # CloudFormation deployments and the outputs they read
    for line in logical_lines(body):
        if not re.search(r"\b(aws cloudformation deploy|sam deploy)\b", line):
            continue
        tf = (flag_values(line, "--template-file") or [None])[0]
        tpl = templates.get("deploy/lambda/template.yaml" if tf == "packaged.yaml" else tf or "")
        if tpl is None:
            fails.append(f"deploys template {tf!r}, which is not in the repository")
            continue
        given = set(re.findall(r"\b([A-Z][A-Za-z0-9]+)=", line.split("--parameter-overrides", 1)[1])) if "--parameter-overrides" in line else set()
        if tpl.required - given:
            fails.append(f"{tf}: parameters without a default not given: {', '.join(sorted(tpl.required - given))}")
        if given - tpl.params:
            fails.append(f"{tf}: unknown parameters: {', '.join(sorted(given - tpl.params))}")
    for stack, key in re.findall(r"\bout ([a-z0-9-]+) ([A-Za-z0-9]+)", body):
        tpl = templates.get(stacks.get(stack, ""))
        if tpl is None:
            fails.append(f"out {stack} {key}: no runbook deploys a stack {stack}")
        elif key not in tpl.outputs:
            fails.append(f"out {stack} {key}: {tpl.path.name} has no output {key}")
    for flag in AWS_NAME_FLAGS:
        for value in flag_values(body, flag):
            if value not in aws_names and value not in stacks:
                fails.append(f"{flag} {value}: created by no template in deploy/infra or deploy/lambda, nor by a runbook")
    for line in logical_lines(body):
        if re.search(r"\bgit push\b.*(\s|:)(main|release)\b", line):
            fails.append(f"pushes straight to a protected branch ({line.strip()}): push a branch and open a pull request")
    if not re.search(r"(?m)^Expected:", after):
        fails.append("no `Expected:` line after the block (what a correct run prints)")
    if not re.search(r"(?m)^Rollback:", after):
        fails.append("no `Rollback:` line after the block (how to undo it, or why nothing needs undoing)")
    return [f"{where}: {f}" for f in fails]


# What the bad runbook must make the checks report: one fragment per check.
EXPECTED_FAILURES = (
    "namespace flash-tickets is used by no rendered resource",
    "argocd app flash-api: no such Application",
    "-l app.kubernetes.io/name=flash-nope: no rendered resource carries that label",
    "-l topology.kubernetes.io/zone=ap-northeast-2d: no NodePool launches nodes",
    "nodepool default has no field .spec.limits.gpu",
    "deployment/flash-queue is not in the rendered manifests",
    "parameters without a default not given: HostedZoneId",
    "unknown parameters: Bogus",
    "edge.yaml has no output NoSuchOutput",
    "--db-instance-identifier flash-legacy: created by no template",
    "pushes straight to a protected branch",
    "no `Expected:` line",
    "no `Rollback:` line",
)


def self_test(path: pathlib.Path, rendered, templates, stacks, aws_names) -> int:
    """The checks can fail: each mistake of the bad runbook is reported."""
    text = path.read_text()
    reported = []
    for m in FENCE.finditer(text):
        if m.group(1).split()[:2] == ["sh", "cluster"]:
            reported += check_cluster_block(str(path), m.group(2), text[m.end():], rendered, templates, stacks, aws_names)
    missed = [e for e in EXPECTED_FAILURES if not any(e in r for r in reported)]
    for e in missed:
        print(f"FAIL self-test: the checks did not report: {e}")
    if not missed:
        print(f"self-test: the {len(EXPECTED_FAILURES)} kinds of mistake in {path.name} are all reported")
    return 1 if missed else 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scratch", required=True, type=pathlib.Path)
    ap.add_argument("--rendered", required=True, type=pathlib.Path)
    ap.add_argument("--expect-failures", type=pathlib.Path,
                    help="self-test: a runbook whose cluster block must fail each check (testdata/bad-runbook.md)")
    ap.add_argument("runbooks", nargs="*", type=pathlib.Path)
    args = ap.parse_args()
    root = pathlib.Path(__file__).resolve().parents[2]
    rendered = Rendered(args.rendered)
    templates = {str(p.relative_to(root)): Template(p) for p in sorted((root / "deploy" / "infra").glob("*.yaml"))}
    templates["deploy/lambda/template.yaml"] = Template(root / "deploy" / "lambda" / "template.yaml")
    aws_names: set[str] = set()
    for t in templates.values():
        aws_names |= t.names()
    texts = {rb: rb.read_text() for rb in args.runbooks}
    stacks: dict[str, str] = {}
    for text in texts.values():
        for line in logical_lines(text):
            if re.search(r"\b(aws cloudformation deploy|sam deploy)\b", line):
                for s in flag_values(line, "--stack-name"):
                    tf = (flag_values(line, "--template-file") or [""])[0]
                    stacks[s] = "deploy/lambda/template.yaml" if tf == "packaged.yaml" else tf
        aws_names |= set(re.findall(r"create-secret --name ([\w/-]+)", text))

    if args.expect_failures:
        return self_test(args.expect_failures, rendered, templates, stacks, aws_names)

    if args.scratch.exists():
        shutil.rmtree(args.scratch)

    failures = 0
    for rb, text in texts.items():
        ci_blocks, cluster = [], 0
        fences = list(FENCE.finditer(text))
        for i, m in enumerate(fences):
            info = m.group(1).split()
            if not info or info[0] not in SHELLS:
                continue
            line = text.count("\n", 0, m.start()) + 1
            tag = info[1] if len(info) > 1 else None
            if tag == "ci":
                ci_blocks.append((line, m.group(2)))
            elif tag == "cluster":
                cluster += 1
                end = fences[i + 1].start() if i + 1 < len(fences) else len(text)
                after = text[m.end():end]
                heading = re.search(r"(?m)^#", after)
                after = after[: heading.start()] if heading else after
                for f in check_cluster_block(f"{rb}:{line}", m.group(2), after, rendered, templates, stacks, aws_names):
                    print(f"FAIL {f}")
                    failures += 1
            else:
                print(f"FAIL {rb}:{line}: shell block tagged {tag!r}: tag it `ci` (runs here) or `cluster`")
                failures += 1
        script = ["set -euo pipefail"]
        for line, body in ci_blocks:
            script.append(f"printf '\\n--- {rb.name}:{line}\\n'")
            script.append(body)
        print(f"== {rb}: {len(ci_blocks)} block(s) run here, {cluster} checked against the manifests and templates")
        # A fresh copy per runbook: one runbook's edits never change what the next one sees.
        scratch = args.scratch / rb.stem
        for part in ("deploy", "docs"):
            shutil.copytree(root / part, scratch / part, ignore=shutil.ignore_patterns("node_modules"), symlinks=True)
        # The scratch copy lies inside the working tree: git must not find the repository from
        # there (a runbook's git step would act on the real checkout).
        env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(args.scratch.resolve()))
        p = subprocess.run(["bash", "-c", "\n".join(script)], cwd=scratch, text=True, env=env)
        if p.returncode != 0:
            print(f"FAIL {rb}: a ci block exited with {p.returncode}")
            failures += 1
    if failures:
        print(f"\nrunbooks: {failures} problem(s)")
        return 1
    print("\nrunbooks: every command ran, or was checked against the manifests and templates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
