# Names and labels shared by the resource modules.
cfg: rec {
  name = "mcp-server";
  labels = {
    "app.kubernetes.io/name" = name;
    "app.kubernetes.io/instance" = "${name}-${cfg.environment}";
    "app.kubernetes.io/version" = cfg.image.tag;
    "app.kubernetes.io/component" = "server";
    "app.kubernetes.io/part-of" = name;
    "app.kubernetes.io/managed-by" = "kubenix";
  };
  # Selectors use only labels that never change across releases.
  selector = {
    "app.kubernetes.io/name" = name;
    "app.kubernetes.io/instance" = "${name}-${cfg.environment}";
  };
  meta = extra: {
    namespace = cfg.namespace;
    labels = labels // (extra.labels or { });
  } // builtins.removeAttrs extra [ "labels" ];
  ports = {
    http = 8000;
    metrics = 9090;
  };
}
