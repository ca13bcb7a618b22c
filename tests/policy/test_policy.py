"""Policy over the rendered manifests (deploy/rendered/<environment>/): the invariants the
Kubernetes modules promise, checked on what would actually be applied.

Run: python3 tests/policy/test_policy.py (needs PyYAML; .ci/checks/kubernetes.sh runs it).
"""
import pathlib
import re
import unittest

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "rendered"
WORKLOADS = {"Deployment", "StatefulSet", "Rollout"}


def load(environment):
    return [yaml.safe_load(p.read_text()) for p in sorted((ROOT / environment).glob("*.yaml"))]


def environments():
    return sorted(p.name for p in ROOT.iterdir() if p.is_dir())


def pods(objects):
    for o in objects:
        if o["kind"] in WORKLOADS:
            yield o, o["spec"]["template"]


def duration(value):
    return int(value.rstrip("s"))


class PolicyTest(unittest.TestCase):
    def each(self):
        for environment in environments():
            with self.subTest(environment=environment):
                yield environment, load(environment)

    def test_environments_are_rendered(self):
        self.assertEqual(environments(), ["production", "staging", "staging-blue-green"])

    def test_everything_is_namespaced_and_labelled(self):
        for _, objects in self.each():
            for o in objects:
                meta = o["metadata"]
                if o["kind"] != "Namespace":
                    self.assertEqual(meta["namespace"], "mcp", o["kind"])
                for label in ["app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by"]:
                    self.assertIn(label, meta.get("labels", {}), f"{o['kind']}/{meta['name']}")

    def test_no_secret_values_are_rendered(self):
        for _, objects in self.each():
            for o in objects:
                self.assertNotEqual(o["kind"], "Secret", "secrets are referenced, never rendered")
                text = yaml.safe_dump(o)
                for word in ["password:", "stringData", "JWT_SECRET:"]:
                    self.assertNotIn(word, text, f"{o['kind']}/{o['metadata']['name']}")

    def test_containers_are_locked_down(self):
        for _, objects in self.each():
            for workload, template in pods(objects):
                spec = template["spec"]
                self.assertTrue(spec["securityContext"]["runAsNonRoot"])
                self.assertIs(spec.get("automountServiceAccountToken"), False)
                server = workload["metadata"]["labels"]["app.kubernetes.io/component"] == "server"
                for c in spec.get("initContainers", []) + spec["containers"]:
                    where = f"{workload['kind']}/{workload['metadata']['name']}/{c['name']}"
                    sc = c["securityContext"]
                    self.assertEqual(sc["capabilities"]["drop"], ["ALL"], where)
                    self.assertIs(sc["allowPrivilegeEscalation"], False, where)
                    self.assertEqual(sc["seccompProfile"]["type"], "RuntimeDefault", where)
                    self.assertTrue(c["resources"]["requests"] and c["resources"]["limits"], where)
                    image = c["image"]
                    self.assertRegex(image, r":[A-Za-z0-9_.-]+$", where)
                    self.assertFalse(image.endswith(":latest"), where)
                    if server:
                        self.assertIs(sc["readOnlyRootFilesystem"], True, where)
                        self.assertEqual(sc["runAsUser"], 1000, where)
                if server:
                    main = spec["containers"][0]
                    for probe, path in [("livenessProbe", "/health"), ("readinessProbe", "/health/ready"), ("startupProbe", "/health")]:
                        self.assertEqual(main[probe]["httpGet"]["path"], path)
                    mounts = {m["mountPath"] for m in main["volumeMounts"]}
                    self.assertTrue({"/tmp", "/var/cache/mcp-server"} <= mounts)
                    self.assertEqual(spec["initContainers"][0]["args"], ["migrate"])
                    self.assertEqual(spec["initContainers"][0]["image"], main["image"], "migrations from the same image")

    def test_grace_period_covers_the_drain(self):
        for _, objects in self.each():
            config = next(o for o in objects if o["kind"] == "ConfigMap")["data"]
            for workload, template in pods(objects):
                if workload["metadata"]["labels"]["app.kubernetes.io/component"] != "server":
                    continue
                spec = template["spec"]
                pre_stop = spec["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
                needed = pre_stop + duration(config["SHUTDOWN_DELAY"]) + duration(config["SHUTDOWN_TIMEOUT"])
                self.assertGreater(spec["terminationGracePeriodSeconds"], needed)
                self.assertIn("checksum/config", template["metadata"]["annotations"])

    def test_selectors_and_services_line_up(self):
        for _, objects in self.each():
            templates = [t for _, t in pods(objects)]
            for workload, template in pods(objects):
                selector = workload["spec"]["selector"]["matchLabels"]
                self.assertLessEqual(selector.items(), template["metadata"]["labels"].items())
            for service in (o for o in objects if o["kind"] == "Service"):
                selector = service["spec"]["selector"]
                matching = [t for t in templates if selector.items() <= t["metadata"]["labels"].items()]
                self.assertTrue(matching, f"Service {service['metadata']['name']} selects no pods")
                for port in service["spec"]["ports"]:
                    names = {p["name"] for t in matching for c in t["spec"]["containers"] for p in c.get("ports", [])}
                    self.assertIn(port["targetPort"], names, f"Service {service['metadata']['name']} targets a missing port")
            for pdb in (o for o in objects if o["kind"] == "PodDisruptionBudget"):
                self.assertTrue(any(pdb["spec"]["selector"]["matchLabels"].items() <= t["metadata"]["labels"].items() for t in templates))

    def test_main_service_has_no_affinity_and_the_ingress_routes_to_it(self):
        for _, objects in self.each():
            service = next(o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "mcp-server")
            self.assertEqual(service["spec"]["sessionAffinity"], "None")
            self.assertEqual({p["port"] for p in service["spec"]["ports"]}, {80, 9090})
            ingress = next(o for o in objects if o["kind"] == "Ingress")
            backends = {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
            self.assertEqual(backends, {"mcp-server"})
            self.assertEqual(ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-buffering"], "off")

    def test_hpa_targets_an_object_that_exists(self):
        for _, objects in self.each():
            for hpa in (o for o in objects if o["kind"] == "HorizontalPodAutoscaler"):
                ref = hpa["spec"]["scaleTargetRef"]
                self.assertTrue(any(o["kind"] == ref["kind"] and o["metadata"]["name"] == ref["name"] and o["apiVersion"] == ref["apiVersion"] for o in objects), ref)
                self.assertEqual((hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]), (3, 10))

    def test_blue_green_has_two_colours_and_the_service_picks_one(self):
        objects = load("staging-blue-green")
        colours = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
        self.assertEqual(set(colours), {"mcp-server-blue", "mcp-server-green"})
        for name, deployment in colours.items():
            self.assertEqual(deployment["spec"]["template"]["metadata"]["labels"]["version"], name.rsplit("-", 1)[1])
        service = next(o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "mcp-server")
        self.assertEqual(service["spec"]["selector"]["version"], "blue")

    def test_production_is_a_canary_with_analysis(self):
        objects = load("production")
        rollout = next(o for o in objects if o["kind"] == "Rollout")
        steps = rollout["spec"]["strategy"]["canary"]["steps"]
        self.assertEqual([s["setWeight"] for s in steps if "setWeight" in s], [10, 30, 50, 80])
        self.assertTrue(all(s["pause"]["duration"] == "5m" for s in steps if "pause" in s))
        names = {o["metadata"]["name"] for o in objects if o["kind"] == "Service"}
        self.assertLessEqual({rollout["spec"]["strategy"]["canary"]["stableService"], rollout["spec"]["strategy"]["canary"]["canaryService"]}, names)
        analysis = next(o for o in objects if o["kind"] == "AnalysisTemplate")
        self.assertIn("mcp_tool_calls_total", analysis["spec"]["metrics"][0]["provider"]["prometheus"]["query"])
        self.assertFalse(any(o["kind"] == "Deployment" for o in objects))

    def test_production_postgres_is_a_cloudnativepg_cluster_with_backups(self):
        objects = load("production")
        [cluster] = [o for o in objects if o["kind"] == "Cluster"]
        name, spec = cluster["metadata"]["name"], cluster["spec"]
        self.assertEqual(cluster["apiVersion"], "postgresql.cnpg.io/v1")
        self.assertEqual(spec["instances"], 3)
        self.assertIs(spec["affinity"]["enablePodAntiAffinity"], True)
        self.assertNotIn("barmanObjectStore", spec.get("backup", {}), "backups go through the Barman Cloud plugin")
        [archiver] = [p for p in spec["plugins"] if p.get("isWALArchiver")]
        self.assertEqual(archiver["name"], "barman-cloud.cloudnative-pg.io")
        [store] = [o for o in objects if o["kind"] == "ObjectStore"]
        self.assertEqual(store["apiVersion"], "barmancloud.cnpg.io/v1")
        self.assertEqual(archiver["parameters"]["barmanObjectName"], store["metadata"]["name"])
        self.assertRegex(store["spec"]["retentionPolicy"], r"^[1-9][0-9]*[dwm]$")
        configuration = store["spec"]["configuration"]
        self.assertRegex(configuration["destinationPath"], r"^s3://[^/]+/")
        # Credentials only as references to an existing Secret: each a {name, key} and nothing else.
        self.assertEqual(set(configuration["s3Credentials"]), {"accessKeyId", "secretAccessKey"})
        for ref in configuration["s3Credentials"].values():
            self.assertEqual(set(ref), {"name", "key"})
        self.assertEqual(len({ref["name"] for ref in configuration["s3Credentials"].values()}), 1)
        [backup] = [o for o in objects if o["kind"] == "ScheduledBackup"]
        self.assertEqual(backup["spec"]["cluster"]["name"], name)
        self.assertEqual((backup["spec"]["method"], backup["spec"]["pluginConfiguration"]["name"]), ("plugin", archiver["name"]))
        self.assertEqual(len(backup["spec"]["schedule"].split()), 6, "CNPG's cron has a seconds field")
        self.assertFalse(any(o["kind"] == "StatefulSet" for o in objects), "no second PostgreSQL")
        text = "".join(yaml.safe_dump(o) for o in objects)
        self.assertIsNone(re.search(r"AKIA[0-9A-Z]{16}|ACCESS_SECRET_KEY: |aws_secret", text), "no credentials in the manifests")

    def test_production_server_connects_to_the_cloudnativepg_primary(self):
        objects = load("production")
        [cluster] = [o for o in objects if o["kind"] == "Cluster"]
        name = cluster["metadata"]["name"]
        config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "mcp-server-config")["data"]
        self.assertEqual(config["DB_HOST"], f"{name}-rw")
        self.assertEqual(config["DB_NAME"], cluster["spec"]["bootstrap"]["initdb"]["database"])
        servers = [t for w, t in pods(objects) if w["metadata"]["labels"]["app.kubernetes.io/component"] == "server"]
        self.assertTrue(servers)
        for template in servers:
            spec = template["spec"]
            for c in spec["initContainers"] + spec["containers"]:
                env = {e["name"]: e for e in c["env"]}
                for variable, key in [("DB_USER", "username"), ("DB_PASSWORD", "password")]:
                    self.assertNotIn("value", env[variable], c["name"])
                    self.assertEqual(env[variable]["valueFrom"]["secretKeyRef"], {"name": f"{name}-app", "key": key}, c["name"])
        policy = next(o for o in objects if o["kind"] == "NetworkPolicy")
        [rule] = [r for r in policy["spec"]["egress"] if {"port": 5432, "protocol": "TCP"} in r["ports"]]
        self.assertEqual(rule["to"], [{"podSelector": {"matchLabels": {"cnpg.io/cluster": name}}}])

    def test_staging_keeps_its_in_cluster_postgres(self):
        for environment in ["staging", "staging-blue-green"]:
            objects = load(environment)
            self.assertFalse(any(o["apiVersion"].endswith("cnpg.io/v1") for o in objects), environment)
            self.assertTrue(any(o["kind"] == "StatefulSet" and o["metadata"]["name"] == "postgres" for o in objects), environment)
            config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "mcp-server-config")["data"]
            self.assertEqual(config["DB_HOST"], "postgres", environment)


if __name__ == "__main__":
    unittest.main(verbosity=1)
