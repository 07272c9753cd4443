#!/usr/bin/env python3
"""Runs the runbooks' commands (deploy/check calls it with the local system set up).

    run_runbooks.py --scratch DIR --names FILE docs/runbooks/*.md

Every fenced block of shell in a runbook carries a tag after the language:

    ```sh ci        runs here, against the local PostgreSQL, Redis, RabbitMQ and pods
    ```sh cluster   needs the EKS cluster or AWS: checked with `bash -n`, and every
                    kind/name it names (deployment/flash-api, hpa/flash-pay, …) must exist
                    in the rendered manifests (FILE: one "kind/name" a line)

An untagged shell block fails the check: each command is either run or marked. The `ci`
blocks of one runbook run in order in one bash process (set -euo pipefail) with the
repository's deploy/ and docs/ copied to DIR/<runbook>, so a runbook may edit files (an image tag bump)
without touching the working tree. Blocks in other languages (text, promql) are not commands.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import shutil
import subprocess
import sys

FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
SHELLS = {"sh", "bash", "shell", "console"}
# kind/name as kubectl takes it; not a path (deploy/k8s/…): nothing path-like around it.
REF = re.compile(r"(?<![\w/.-])(deployment|deploy|hpa|pdb|job|svc|service|nodepool|ec2nodeclass|application|app|networkpolicy|externalsecret|ingress|configmap|cm)/([a-z0-9][a-z0-9.-]*)(?![\w/])")
KIND = {"deploy": "deployment", "svc": "service", "app": "application", "cm": "configmap",
        "hpa": "horizontalpodautoscaler", "pdb": "poddisruptionbudget"}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scratch", required=True, type=pathlib.Path)
    ap.add_argument("--names", required=True, type=pathlib.Path)
    ap.add_argument("runbooks", nargs="+", type=pathlib.Path)
    args = ap.parse_args()
    names = {line.strip().lower() for line in args.names.read_text().splitlines() if line.strip()}
    root = pathlib.Path(__file__).resolve().parents[2]

    if args.scratch.exists():
        shutil.rmtree(args.scratch)

    failures = 0
    for rb in args.runbooks:
        text = rb.read_text()
        ci_blocks, cluster_blocks = [], []
        for m in FENCE.finditer(text):
            info = m.group(1).split()
            if not info or info[0] not in SHELLS:
                continue
            line = text.count("\n", 0, m.start()) + 1
            tag = info[1] if len(info) > 1 else None
            if tag == "ci":
                ci_blocks.append((line, m.group(2)))
            elif tag == "cluster":
                cluster_blocks.append((line, m.group(2)))
            else:
                print(f"FAIL {rb}:{line}: shell block tagged {tag!r}: tag it `ci` (runs here) or `cluster`")
                failures += 1
        for line, body in cluster_blocks:
            r = subprocess.run(["bash", "-n"], input=body, text=True, capture_output=True)
            if r.returncode != 0:
                print(f"FAIL {rb}:{line}: cluster block is not valid bash: {r.stderr.strip()}")
                failures += 1
            for kind, name in REF.findall(body):
                if f"{KIND.get(kind, kind)}/{name}" not in names:
                    print(f"FAIL {rb}:{line}: {kind}/{name} is not in the rendered manifests")
                    failures += 1
        script = ["set -euo pipefail"]
        for line, body in ci_blocks:
            script.append(f"printf '\\n--- {rb.name}:{line}\\n'")
            script.append(body)
        print(f"== {rb}: {len(ci_blocks)} block(s) run here, {len(cluster_blocks)} marked cluster")
        # A fresh copy per runbook: one runbook's edits never change what the next one sees.
        scratch = args.scratch / rb.stem
        for part in ("deploy", "docs"):
            shutil.copytree(root / part, scratch / part, ignore=shutil.ignore_patterns("node_modules"), symlinks=True)
        r = subprocess.run(["bash", "-c", "\n".join(script)], cwd=scratch, text=True)
        if r.returncode != 0:
            print(f"FAIL {rb}: a ci block exited with {r.returncode}")
            failures += 1
    if failures:
        print(f"\nrunbooks: {failures} problem(s)")
        return 1
    print("\nrunbooks: every command ran or is marked cluster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
