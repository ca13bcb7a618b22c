# Evaluates the kubenix modules (modules/kubernetes) with settings they must refuse or render, and returns
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
  staging = ../../modules/kubernetes/staging.nix;
  embeddings = settings: { mcp.embeddings = settings; };
  # The staging ConfigMap's data and the Deployment's container images, with `settings`.
  rendered =
    settings:
    let
      objects = (eval [ staging (embeddings settings) ]).kubernetes.objects;
      one = kind: lib.findFirst (o: o.kind == kind && o.metadata.name == "mcp-server${lib.optionalString (kind == "ConfigMap") "-config"}") null objects;
      pod = (one "Deployment").spec.template.spec;
    in
    {
      egress = map (rule: (lib.head rule.ports).port) (one "NetworkPolicy").spec.egress;
      config = (one "ConfigMap").data;
      images = map (c: c.image) (pod.containers ++ pod.initContainers or [ ]);
    };
  local = rendered { mode = "local"; };
  endpoint = rendered {
    mode = "endpoint";
    url = "http://ollama.ai.svc:11434/v1/embeddings";
    model = "nomic-embed-text";
    searchMode = "hybrid";
  };
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
  "kubernetes: embeddings off by default" = !((rendered { }).config ? EMBEDDINGS);
  "kubernetes: local embeddings run the image with the model" =
    local.config.EMBEDDINGS == "local"
    && local.config.VECTOR_CACHE_BYTES == "536870912"
    && local.images != [ ]
    && lib.all (lib.hasSuffix "-minilm") local.images;
  "kubernetes: endpoint embeddings render their settings" =
    endpoint.config.EMBEDDINGS == "endpoint"
    && endpoint.config.EMBEDDINGS_URL == "http://ollama.ai.svc:11434/v1/embeddings"
    && endpoint.config.EMBEDDINGS_MODEL == "nomic-embed-text"
    && endpoint.config.SEARCH_MODE == "hybrid"
    && lib.elem 11434 endpoint.egress
    && !(lib.elem 11434 local.egress)
    && !(lib.any (lib.hasSuffix "-minilm") endpoint.images);
  "kubernetes: endpoint embeddings without a url refused" = refused [
    production
    (embeddings { mode = "endpoint"; model = "nomic-embed-text"; })
  ];
  "kubernetes: an embeddings url that is not http(s) refused" = refused [
    production
    (embeddings { mode = "endpoint"; url = "ollama:11434"; model = "nomic-embed-text"; })
  ];
  "kubernetes: an embeddings url with mode local refused" = refused [
    production
    (embeddings { mode = "local"; url = "http://ollama:11434/v1/embeddings"; })
  ];
  "kubernetes: searchMode hybrid with embeddings off refused" = refused [
    production
    (embeddings { searchMode = "hybrid"; })
  ];
  "kubernetes: an embeddings setting both typed and in mcp.config refused" = refused [
    production
    (embeddings { mode = "local"; })
    { mcp.config.VECTOR_CACHE_BYTES = "1073741824"; }
  ];
  "kubernetes: cloudnativepg with an external database.host refused" = refused [
    production
    { mcp.database.host = "db.example.com"; }
  ];
}
