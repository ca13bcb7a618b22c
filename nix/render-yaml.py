#!/usr/bin/env python3
"""Writes Kubernetes objects (a JSON list) as one YAML file per object.

usage: render-yaml.py OBJECTS.json OUT_DIR [--image IMAGE]

The same converter writes the committed deploy/rendered/ (offline, from `nix eval --json`) and
the flake's manifests, so the drift check compares like with like. --image replaces the
mcp-server image of every container (the deploy apps pin the pushed tag).
"""
import json
import os
import sys

import yaml


def main() -> None:
    args = sys.argv[1:]
    image = None
    if "--image" in args:
        i = args.index("--image")
        image = args[i + 1]
        del args[i : i + 2]
    source, out = args
    with open(source) as f:
        objects = json.load(f)
    os.makedirs(out, exist_ok=True)
    for obj in objects:
        if image:
            pod = obj.get("spec", {}).get("template", {}).get("spec", {})
            for container in pod.get("initContainers", []) + pod.get("containers", []):
                if "/mcp-server:" in container.get("image", ""):
                    container["image"] = image
        name = f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
        with open(os.path.join(out, name), "w") as f:
            yaml.safe_dump(obj, f, sort_keys=True, default_flow_style=False)


if __name__ == "__main__":
    main()
