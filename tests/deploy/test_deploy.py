"""The deploy script with fake kubectl, skopeo, git and mcp-server on PATH that record their calls.

Run: python3 tests/deploy/test_deploy.py (needs PyYAML; .ci/checks/kubernetes.sh runs it).
"""
import json
import os
import pathlib
import stat
import subprocess
import tempfile
import unittest

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
FAKE = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >>"$CALLS"
case "$(basename "$0") $*" in
  "git describe"*) [[ -n ${FAKE_TAG:-} ]] && echo "$FAKE_TAG" || exit 128 ;;
  "git rev-parse"*) echo 0123456789ab ;;
  "mcp-server smoke"*) exit "${FAKE_SMOKE_EXIT:-0}" ;;
  "kubectl -n mcp get service"*) echo "${FAKE_ACTIVE:-}" ;;
  "kubectl -n mcp rollout status"*) exit "${FAKE_ROLLOUT_EXIT:-0}" ;;
  "kubectl -n mcp port-forward"*) sleep 30 ;;
  "kubectl diff"*) cp -r "${@: -1}" "$CALLS.manifests" ;;
esac
exit 0
"""


def objects_json(environment, directory):
    objects = [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "deploy/rendered" / environment).glob("*.yaml"))]
    path = directory / f"{environment}.json"
    path.write_text(json.dumps(objects))
    return path


class DeployTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp())
        bin_dir = self.tmp / "bin"
        bin_dir.mkdir()
        for tool in ["kubectl", "skopeo", "git", "mcp-server"]:
            path = bin_dir / tool
            path.write_text(FAKE)
            path.chmod(path.stat().st_mode | stat.S_IEXEC)
        stream = bin_dir / "stream-image"
        stream.write_text("#!/usr/bin/env bash\necho image-bytes\n")
        stream.chmod(0o755)
        render = bin_dir / "render"
        render.write_text(f"#!/usr/bin/env bash\nexec python3 {ROOT}/nix/render-yaml.py \"$@\"\n")
        render.chmod(0o755)
        self.calls = self.tmp / "calls"
        self.bin = bin_dir

    def deploy(self, environment, strategy, *args, **env):
        full_env = {
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "CALLS": str(self.calls),
            "ENVIRONMENT_NAME": environment,
            "IMAGE_STREAM": str(self.bin / "stream-image"),
            "IMAGE_SUFFIX": "",
            "OBJECTS": str(objects_json("staging-blue-green" if strategy == "blue-green" else environment, self.tmp)),
            "RENDER": str(self.bin / "render"),
            "HOST": f"{environment}.mcp.example.com",
            "STRATEGY": strategy,
            "REGISTRY": "ghcr.io",
            "IMAGE": "example/mcp-server",
            **env,
        }
        result = subprocess.run(["bash", str(ROOT / "nix/deploy.sh"), *args], env=full_env, capture_output=True, text=True, timeout=60)
        calls = self.calls.read_text().splitlines() if self.calls.exists() else []
        return result, calls

    def test_staging_rolling_deploy_order_and_arguments(self):
        result, calls = self.deploy("staging", "rolling")
        self.assertEqual(result.returncode, 0, result.stderr)
        tools = [c.split()[0] + " " + c.split()[1] for c in calls]
        self.assertEqual(tools, ["git rev-parse", "skopeo copy", "kubectl apply", "kubectl -n", "mcp-server smoke"])
        self.assertIn("docker://ghcr.io/example/mcp-server:0123456789ab", calls[1])
        self.assertIn("--server-side", calls[2])
        self.assertIn("--prune -l app.kubernetes.io/part-of=mcp-server", calls[2])
        self.assertIn("rollout status deployment/mcp-server", calls[3])
        self.assertEqual(calls[4], "mcp-server smoke https://staging.mcp.example.com/mcp")

    def test_failed_smoke_rolls_back(self):
        result, calls = self.deploy("staging", "rolling", FAKE_SMOKE_EXIT="1")
        self.assertEqual(result.returncode, 1)
        self.assertIn("kubectl -n mcp rollout undo deployment/mcp-server", calls)
        self.assertIn("rolling back", result.stderr)

    def test_rendered_manifests_carry_the_pushed_image(self):
        result, calls = self.deploy("staging", "rolling", "--dry-run")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(any(c.startswith("kubectl diff --server-side") for c in calls))
        self.assertFalse(any(c.startswith("skopeo") or c.startswith("kubectl apply") for c in calls), "dry run changes nothing")
        deployment = yaml.safe_load((self.tmp / "calls.manifests/deployment-mcp-server.yaml").read_text())
        pod = deployment["spec"]["template"]["spec"]
        images = {c["image"] for c in pod["containers"] + pod["initContainers"]}
        self.assertEqual(images, {"ghcr.io/example/mcp-server:0123456789ab"})

    def test_the_image_with_the_model_is_pushed_and_deployed_under_its_own_tag(self):
        result, calls = self.deploy("staging", "rolling", IMAGE_SUFFIX="-minilm")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("docker://ghcr.io/example/mcp-server:0123456789ab-minilm", calls[1])
        result, _ = self.deploy("staging", "rolling", "--dry-run", IMAGE_SUFFIX="-minilm")
        self.assertEqual(result.returncode, 0, result.stderr)
        deployment = yaml.safe_load((self.tmp / "calls.manifests/deployment-mcp-server.yaml").read_text())
        pod = deployment["spec"]["template"]["spec"]
        images = {c["image"] for c in pod["containers"] + pod["initContainers"]}
        self.assertEqual(images, {"ghcr.io/example/mcp-server:0123456789ab-minilm"})

    def test_blue_green_switches_the_service_after_a_good_smoke(self):
        result, calls = self.deploy("staging", "blue-green", FAKE_ACTIVE="blue")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("kubectl -n mcp rollout status deployment/mcp-server-green --timeout=10m", calls)
        self.assertIn("mcp-server smoke http://127.0.0.1:18000/mcp", calls)
        applied = [c for c in calls if c.startswith("kubectl apply")]
        self.assertEqual(len(applied), 1)
        self.assertNotIn("--prune", applied[0], "the active colour must not be pruned")
        patch = [c for c in calls if "patch service mcp-server" in c]
        self.assertEqual(len(patch), 1)
        self.assertIn('"version":"green"', patch[0])
        self.assertLess(calls.index("mcp-server smoke http://127.0.0.1:18000/mcp"), calls.index(patch[0]))

    def test_blue_green_keeps_traffic_when_the_idle_colour_fails(self):
        result, calls = self.deploy("staging", "blue-green", FAKE_ACTIVE="green", FAKE_SMOKE_EXIT="1")
        self.assertEqual(result.returncode, 1)
        self.assertFalse(any("patch service" in c for c in calls))
        self.assertIn("kubectl -n mcp rollout undo deployment/mcp-server-blue", calls)

    def test_production_refuses_without_a_version_tag(self):
        result, calls = self.deploy("production", "canary")
        self.assertEqual(result.returncode, 1)
        self.assertIn("refusing to deploy production", result.stderr)
        self.assertFalse(any(c.startswith("skopeo") or c.startswith("kubectl") for c in calls))

    def test_production_from_a_tag_hands_over_to_argo_rollouts(self):
        result, calls = self.deploy("production", "canary", FAKE_TAG="v1.2.3")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("kubectl argo rollouts status mcp-server -n mcp --timeout 45m", calls)

    def test_production_forced_without_tag(self):
        result, _ = self.deploy("production", "canary", "--force")
        self.assertEqual(result.returncode, 0, result.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
