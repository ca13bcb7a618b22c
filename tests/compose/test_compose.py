"""Policy over the single-host deployment (deploy/compose/, rendered from nix/compose.nix): what
the compose file promises, checked on the file an operator runs.

Run: python3 tests/compose/test_compose.py (needs PyYAML; .ci/checks/compose.sh runs it).
"""
import pathlib
import re
import unittest

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
DIR = REPO / "deploy" / "compose"
COMPOSE = yaml.safe_load((DIR / "docker-compose.prod.yml").read_text())
SERVICES = COMPOSE["services"]
NGINX = (DIR / "nginx.conf").read_text()
OURS = {"mcp-server", "migrate"}
SECRET = re.compile(r"PASSWORD|SECRET|TOKEN|KEY")
# Interpolated by Compose only, not server settings.
COMPOSE_ONLY = {"HTTP_PORT", "MCP_IMAGE"}


def env_example():
    lines = (DIR / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def one_shots():
    """Services others wait on to complete: they run once, so no restart and no health check."""
    return {
        dep
        for s in SERVICES.values()
        for dep, how in s.get("depends_on", {}).items()
        if how["condition"] == "service_completed_successfully"
    }


def documented_settings():
    """Every variable named in the README's Configuration table."""
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))


class ComposeTest(unittest.TestCase):
    def test_three_replicas_behind_the_proxy(self):
        self.assertEqual(SERVICES["mcp-server"]["deploy"]["replicas"], 3)
        self.assertNotIn("ports", SERVICES["mcp-server"], "replicas are reached through the proxy only")
        self.assertEqual(SERVICES["proxy"]["depends_on"]["mcp-server"]["condition"], "service_healthy")
        self.assertIn("./nginx.conf:/etc/nginx/nginx.conf:ro", SERVICES["proxy"]["volumes"])
        # The service name, resolved at run time (Docker's DNS), on the port the image serves.
        self.assertRegex(NGINX, r"set \$replicas mcp-server:8000;\s+proxy_pass http://\$replicas;")
        self.assertIn("resolver 127.0.0.11", NGINX)

    def test_proxy_is_sse_friendly(self):
        for directive in ("proxy_buffering off;", "proxy_http_version 1.1;", "proxy_read_timeout 1h;"):
            self.assertIn(directive, NGINX)

    def test_every_service_restarts_logs_bounded_and_is_limited(self):
        for name, s in SERVICES.items():
            with self.subTest(service=name):
                self.assertEqual(s["restart"], "no" if name in one_shots() else "unless-stopped")
                self.assertEqual(s["logging"]["driver"], "json-file")
                self.assertLessEqual({"max-size", "max-file"}, set(s["logging"]["options"]))
                self.assertLessEqual({"cpus", "memory"}, set(s["deploy"]["resources"]["limits"]))
                self.assertIn("no-new-privileges:true", s["security_opt"])

    def test_every_long_running_service_has_a_health_check(self):
        self.assertEqual(one_shots(), {"migrate"})
        for name, s in SERVICES.items():
            with self.subTest(service=name):
                if name in one_shots():
                    self.assertEqual(s["healthcheck"], {"disable": True})
                else:
                    self.assertIn(s["healthcheck"]["test"][0], ("CMD", "CMD-SHELL"))

    def test_every_dependency_has_a_condition(self):
        for name, s in SERVICES.items():
            deps = s.get("depends_on", {})
            with self.subTest(service=name):
                self.assertIsInstance(deps, dict, "the short list form has no condition")
                for dep, how in deps.items():
                    self.assertIn(dep, SERVICES)
                    self.assertIn(how["condition"], ("service_healthy", "service_completed_successfully", "service_started"))
        server = SERVICES["mcp-server"]["depends_on"]
        self.assertEqual(server["migrate"]["condition"], "service_completed_successfully")
        self.assertEqual(server["postgres"]["condition"], "service_healthy")

    def test_our_containers_are_locked_down(self):
        for name in OURS:
            s = SERVICES[name]
            with self.subTest(service=name):
                self.assertEqual(s["user"], "1000:1000")
                self.assertTrue(s["read_only"])
                self.assertEqual(s["cap_drop"], ["ALL"])
                self.assertIn("/tmp", s["tmpfs"])
                self.assertRegex(s["image"], r"^\$\{MCP_IMAGE:-mcp-server:[0-9][^}]*\}$")
        self.assertEqual(SERVICES["migrate"]["command"], ["migrate"])

    def test_secrets_are_only_referenced(self):
        for name, s in SERVICES.items():
            for key, value in s.get("environment", {}).items():
                with self.subTest(service=name, variable=key):
                    if SECRET.search(key):
                        # ${NAME:?message}: Compose refuses to start while it is unset or empty.
                        self.assertRegex(str(value), r"^\$\{[A-Z_]+:\?[^}]+\}$")
            for part in s.get("command", []) + s.get("healthcheck", {}).get("test", []):
                for m in re.finditer(r"(--requirepass|_AUTH=)\s*\"?([^\s\"]*)", part):
                    self.assertTrue(m.group(2).startswith("$$"), f"{name}: {part}")
        for key, value in env_example().items():
            with self.subTest(env_example=key):
                if SECRET.search(key):
                    self.assertEqual(value, "", "the example carries no secret value")

    def test_variables_are_the_servers(self):
        known = documented_settings()
        names = set(env_example()) | set(SERVICES["mcp-server"]["environment"])
        self.assertEqual(names - COMPOSE_ONLY - known, set(), "variables the README's Configuration table does not know")
        for var in re.findall(r"\$\{([A-Z_]+)", (DIR / "docker-compose.prod.yml").read_text()):
            with self.subTest(interpolated=var):
                self.assertIn(var, known | COMPOSE_ONLY)


if __name__ == "__main__":
    unittest.main(verbosity=1)
