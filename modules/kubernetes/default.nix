# The mcp-server application for kubenix: typed options, and every resource of the deployment
# guide derived from them. Environments (staging.nix, production.nix) only set options.
{ lib, ... }:
let
  inherit (lib) mkOption types;
  str = default: description: mkOption { inherit default description; type = types.str; };
  int = default: description: mkOption { inherit default description; type = types.int; };
  bool = default: description: mkOption { inherit default description; type = types.bool; };
  quantity = cpu: memory: {
    cpu = str cpu "CPU";
    memory = str memory "Memory";
  };
in
{
  imports = [
    ./crds.nix
    ./workload.nix
    ./network.nix
    ./autoscaling.nix
    ./dependencies.nix
    ./cloudnativepg.nix
    ./monitoring.nix
  ];

  options.mcp = {
    environment = mkOption {
      type = types.enum [ "staging" "production" ];
      description = "Deployment environment (ENVIRONMENT, labels, resource names)";
    };
    namespace = str "mcp" "Namespace of every resource";
    image = {
      repository = str "ghcr.io/example/mcp-server" "Image repository";
      tag = mkOption {
        type = types.strMatching "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
        description = "Image tag (a version or git sha; deploy apps override it)";
      };
      pullPolicy = mkOption {
        type = types.enum [ "IfNotPresent" "Always" ];
        default = "IfNotPresent";
        description = "Image pull policy";
      };
    };
    replicas = int 3 "Replicas (the HPA's floor when autoscaling is on)";
    host = str "mcp.example.com" "Public host name of the Ingress";
    tls = {
      enable = bool true "Serve TLS with a cert-manager certificate";
      clusterIssuer = str "letsencrypt-prod" "cert-manager ClusterIssuer";
    };
    resources = {
      requests = quantity "500m" "512Mi";
      limits = quantity "1000m" "1Gi";
    };
    config = mkOption {
      type = types.attrsOf types.str;
      default = { };
      description = "Extra non-secret settings for the ConfigMap (the server's environment variables)";
    };
    secretName = str "mcp-server-secrets" "Existing Secret with DB_USER, DB_PASSWORD, REDIS_PASSWORD, JWT_SECRET, OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET, EMBEDDINGS_API_KEY";
    externalSecret = {
      enable = bool false "Render an external-secrets.io ExternalSecret that fills secretName";
      store = str "vault" "ClusterSecretStore to read from";
      path = str "mcp/mcp-server" "Path of the secret in the store";
    };
    strategy = mkOption {
      type = types.enum [ "rolling" "blue-green" "canary" ];
      default = "rolling";
      description = "Rollout strategy: a Deployment, two colours behind one Service, or an Argo Rollouts canary";
    };
    activeColor = mkOption {
      type = types.enum [ "blue" "green" ];
      default = "blue";
      description = "Blue-green: the colour the Service sends traffic to";
    };
    canary = {
      steps = mkOption {
        type = types.listOf types.int;
        default = [ 10 30 50 80 ];
        description = "Traffic percentages, each followed by a pause";
      };
      pause = str "5m" "Pause after each step";
      maxErrorRate = mkOption {
        type = types.float;
        default = 0.05;
        description = "Abort when the tool-call error rate exceeds this";
      };
      prometheusAddress = str "http://prometheus-operated.monitoring.svc:9090" "Prometheus the analysis queries";
    };
    hpa = {
      enable = bool true "HorizontalPodAutoscaler";
      min = int 3 "Fewest replicas";
      max = int 10 "Most replicas";
      cpu = int 70 "Target CPU utilisation, percent";
      memory = int 80 "Target memory utilisation, percent";
    };
    networkPolicy = {
      enable = bool true "Allow only the ingress controller, monitoring, DNS, PostgreSQL, Redis and OTLP";
      ingressNamespace = str "ingress-nginx" "Namespace of the ingress controller";
      monitoringNamespace = str "monitoring" "Namespace of Prometheus";
    };
    serviceMonitor = bool false "Prometheus Operator ServiceMonitor";
    otlpEndpoint = mkOption {
      type = types.nullOr types.str;
      default = "http://jaeger-collector.observability.svc:4318";
      description = "OTLP/HTTP endpoint for traces (Jaeger takes OTLP/HTTP on 4318)";
    };
    embeddings = {
      mode = mkOption {
        type = types.enum [ "off" "local" "endpoint" ];
        default = "off";
        description = "Search by meaning (EMBEDDINGS): local runs all-MiniLM-L6-v2 in the server from the image that includes it (tag <image.tag>-minilm, .#image-with-model; ~170 MiB more memory), endpoint calls an OpenAI-compatible embeddings API (its key as EMBEDDINGS_API_KEY in secretName)";
      };
      url = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "http://ollama.ai.svc:11434/v1/embeddings";
        description = "EMBEDDINGS_URL: the endpoint's full URL (mode endpoint)";
      };
      model = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "nomic-embed-text";
        description = "EMBEDDINGS_MODEL: the model name sent to the endpoint and stored with each vector (mode endpoint)";
      };
      searchMode = mkOption {
        type = types.enum [ "substring" "lexical" "semantic" "hybrid" ];
        default = "substring";
        description = "SEARCH_MODE: search_nodes' mode when a call names none; any but substring needs mode local or endpoint";
      };
      vectorCacheMiB = int 512 "VECTOR_CACHE_BYTES in MiB: memory for the vectors searches rank (~430 bytes an entity); count it in resources.limits.memory";
    };
    database = {
      host = str "postgres.mcp.svc.cluster.local" "PostgreSQL host (an external database; set by cloudnativepg)";
      name = str "mcp" "PostgreSQL database";
    };
    redisHost = str "redis.mcp.svc.cluster.local" "Redis host";
    rateLimit = int 60 "Requests per tenant per minute";
    inCluster = {
      postgres = bool false "Run PostgreSQL in the namespace (self-contained staging)";
      redis = bool false "Run Redis in the namespace (self-contained staging)";
    };
    shutdown = {
      preStopSeconds = int 5 "preStop pause so endpoints stop routing before SIGTERM";
      delaySeconds = int 5 "SHUTDOWN_DELAY: readiness fails, requests still served";
      timeoutSeconds = int 25 "SHUTDOWN_TIMEOUT: longest drain";
    };
  };
}
