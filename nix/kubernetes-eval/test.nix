# Evaluates the kubenix modules (modules/kubernetes) with settings they must refuse, and returns
# named booleans; nix/eval.sh reports them. The rendered manifests' own properties are checked by
# tests/policy on deploy/rendered.
{
  lib,
  eval,
}:
let
  production = ../../modules/kubernetes/production.nix;
  renders = modules: (builtins.tryEval (builtins.deepSeq (eval modules).kubernetes.objects true)).success;
  refused = modules: !renders modules;
  cnpg = settings: { mcp.database.cloudnativepg = settings; };
in
{
  # Without it the refusals below could pass because nothing evaluates at all.
  "kubernetes: production renders" = renders [ production ];
  "kubernetes: cloudnativepg with inCluster.postgres refused" = refused [
    production
    { mcp.inCluster.postgres = true; }
  ];
  "kubernetes: cloudnativepg without backup.destinationPath refused" = refused [
    production
    (cnpg { backup.destinationPath = lib.mkForce null; })
  ];
  "kubernetes: cloudnativepg with a five-field cron schedule refused" = refused [
    production
    (cnpg { backup.schedule = "0 2 * * *"; })
  ];
  "kubernetes: a secret in mcp.config refused" = refused [
    production
    { mcp.config.EMBEDDINGS_API_KEY = "sk-oops"; }
  ];
  "kubernetes: endpoint embeddings settings in mcp.config render" = renders [
    production
    { mcp.config = { EMBEDDINGS = "endpoint"; EMBEDDINGS_URL = "http://ollama:11434/v1/embeddings"; EMBEDDINGS_MODEL = "nomic-embed-text"; }; }
  ];
  "kubernetes: cloudnativepg with an external database.host refused" = refused [
    production
    { mcp.database.host = "db.example.com"; }
  ];
}
