# Namespace, ServiceAccount, ConfigMap and the pods: one Deployment (rolling), two coloured
# Deployments (blue-green) or an Argo Rollout (canary), all from one pod template.
{ config, lib, ... }:
let
  cfg = config.mcp;
  k = import ./lib.nix cfg;
  emb = cfg.embeddings;
  # With the model in the server, the image that includes it, tagged as nix/image.nix tags it.
  image = "${cfg.image.repository}:${cfg.image.tag}${lib.optionalString (emb.mode == "local") "-minilm"}";

  configData = {
    ENVIRONMENT = cfg.environment;
    LOG_LEVEL = "info,rmcp=warn";
    LOG_FORMAT = "json";
    HOST = "0.0.0.0";
    PORT = toString k.ports.http;
    METRICS_PORT = toString k.ports.metrics;
    DB_HOST = cfg.database.host;
    DB_PORT = "5432";
    DB_NAME = cfg.database.name;
    REDIS_HOST = cfg.redisHost;
    REDIS_PORT = "6379";
    RATE_LIMIT_ENABLED = "true";
    RATE_LIMIT_REQUESTS_PER_MINUTE = toString cfg.rateLimit;
    MCP_RESOURCE_URL = "https://${cfg.host}/mcp";
    ALLOWED_HOSTS = "${cfg.host},localhost,127.0.0.1";
    DATA_DIR = "/var/cache/mcp-server";
    SHUTDOWN_DELAY = "${toString cfg.shutdown.delaySeconds}s";
    SHUTDOWN_TIMEOUT = "${toString cfg.shutdown.timeoutSeconds}s";
  }
  // lib.optionalAttrs (cfg.otlpEndpoint != null) {
    OTEL_EXPORTER_OTLP_ENDPOINT = cfg.otlpEndpoint;
    OTEL_SERVICE_NAME = "mcp-server";
  }
  // embeddingsData
  // checkedConfig;

  # Contradictory embeddings options fail the render, naming the option to fix.
  needs = option: value: lib.throwIf (value == null) "mcp.embeddings.${option} must be set with mcp.embeddings.mode = \"endpoint\"" value;
  embeddingsData =
    lib.throwIf (emb.mode != "endpoint" && (emb.url != null || emb.model != null))
      "mcp.embeddings.url and mcp.embeddings.model are for mcp.embeddings.mode = \"endpoint\", not \"${emb.mode}\""
      lib.throwIf
      (emb.mode == "off" && emb.searchMode != "substring")
      "mcp.embeddings.searchMode = \"${emb.searchMode}\" needs mcp.embeddings.mode \"local\" or \"endpoint\""
      (
        lib.optionalAttrs (emb.mode != "off") {
          EMBEDDINGS = emb.mode;
          VECTOR_CACHE_BYTES = toString (emb.vectorCacheMiB * 1024 * 1024);
        }
        // lib.optionalAttrs (emb.mode == "endpoint") {
          EMBEDDINGS_URL = needs "url" emb.url;
          EMBEDDINGS_MODEL = needs "model" emb.model;
        }
        // lib.optionalAttrs (emb.searchMode != "substring") { SEARCH_MODE = emb.searchMode; }
      );

  # The ConfigMap is a rendered manifest anyone with the repo can read: secrets go in the Secret
  # (and DATABASE_URL too, which holds a password here: the pods' database comes as DB_*).
  secrets = import ../../nix/secrets.nix ++ [ "DATABASE_URL" ];
  inConfig = lib.filter (n: cfg.config ? ${n}) secrets;
  # Set by mcp.embeddings once it is used: the same setting twice would be a silent choice.
  typed = lib.filter (n: cfg.config ? ${n}) (lib.attrNames embeddingsData);
  checkedConfig =
    lib.throwIf (inConfig != [ ])
      "mcp.config holds ${lib.concatStringsSep ", " inConfig}, a secret: put it in the Secret ${cfg.secretName} instead"
      lib.throwIf
      (typed != [ ])
      "mcp.config sets ${lib.concatStringsSep ", " typed}, which mcp.embeddings sets: keep one of them"
      cfg.config;

  # Config changes roll the pods: the template carries a hash of the ConfigMap.
  configHash = builtins.hashString "sha256" (builtins.toJSON configData);

  probe = path: extra: {
    httpGet = {
      inherit path;
      port = "http";
    };
    timeoutSeconds = 3;
  } // extra;

  containerSecurity = {
    runAsNonRoot = true;
    runAsUser = 1000;
    runAsGroup = 1000;
    allowPrivilegeEscalation = false;
    readOnlyRootFilesystem = true;
    capabilities.drop = [ "ALL" ];
    seccompProfile.type = "RuntimeDefault";
  };

  # CloudNativePG generates the database owner's credentials into <cluster>-app; env wins over
  # envFrom, so these replace DB_USER and DB_PASSWORD of cfg.secretName.
  cnpg = cfg.database.cloudnativepg;
  cnpgEnv = name: key: {
    inherit name;
    valueFrom.secretKeyRef = {
      name = "${cnpg.name}-app";
      inherit key;
    };
  };
  env = [
    { name = "POD_NAME"; valueFrom.fieldRef.fieldPath = "metadata.name"; }
    { name = "POD_NAMESPACE"; valueFrom.fieldRef.fieldPath = "metadata.namespace"; }
  ]
  ++ lib.optionals cnpg.enable [
    (cnpgEnv "DB_USER" "username")
    (cnpgEnv "DB_PASSWORD" "password")
  ];
  envFrom = [
    { configMapRef.name = "${k.name}-config"; }
    { secretRef.name = cfg.secretName; }
  ];
  mounts = [
    { name = "tmp"; mountPath = "/tmp"; }
    { name = "cache"; mountPath = "/var/cache/mcp-server"; }
  ];

  podTemplate = color: {
    metadata = {
      labels = k.labels // lib.optionalAttrs (color != null) { version = color; };
      annotations = {
        "prometheus.io/scrape" = "true";
        "prometheus.io/port" = toString k.ports.metrics;
        "prometheus.io/path" = "/metrics";
        "checksum/config" = configHash;
      };
    };
    spec = {
      serviceAccountName = k.name;
      automountServiceAccountToken = false;
      # preStop pause + readiness-failing delay + drain, plus a margin for the process to exit.
      terminationGracePeriodSeconds =
        cfg.shutdown.preStopSeconds + cfg.shutdown.delaySeconds + cfg.shutdown.timeoutSeconds + 5;
      securityContext = {
        runAsNonRoot = true;
        runAsUser = 1000;
        runAsGroup = 1000;
        fsGroup = 1000;
        seccompProfile.type = "RuntimeDefault";
      };
      initContainers = [
        {
          name = "migrate";
          inherit image envFrom env;
          imagePullPolicy = cfg.image.pullPolicy;
          args = [ "migrate" ];
          securityContext = containerSecurity;
          resources = { inherit (cfg.resources) requests limits; };
          volumeMounts = mounts;
        }
      ];
      containers = [
        {
          name = k.name;
          inherit image envFrom env;
          imagePullPolicy = cfg.image.pullPolicy;
          args = [ "serve" ];
          ports = [
            { name = "http"; containerPort = k.ports.http; protocol = "TCP"; }
            { name = "metrics"; containerPort = k.ports.metrics; protocol = "TCP"; }
          ];
          resources = { inherit (cfg.resources) requests limits; };
          livenessProbe = probe "/health" { periodSeconds = 10; failureThreshold = 3; };
          readinessProbe = probe "/health/ready" { periodSeconds = 5; failureThreshold = 2; };
          startupProbe = probe "/health" { periodSeconds = 2; failureThreshold = 30; };
          # The image has no shell: the kubelet sleeps (PodLifecycleSleepAction).
          lifecycle.preStop.sleep.seconds = cfg.shutdown.preStopSeconds;
          securityContext = containerSecurity;
          volumeMounts = mounts;
        }
      ];
      volumes = [
        { name = "tmp"; emptyDir = { }; }
        { name = "cache"; emptyDir = { }; }
      ];
      affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution = [
        {
          weight = 100;
          podAffinityTerm = {
            topologyKey = "kubernetes.io/hostname";
            labelSelector.matchLabels = k.selector;
          };
        }
      ];
      topologySpreadConstraints = [
        {
          maxSkew = 1;
          topologyKey = "topology.kubernetes.io/zone";
          whenUnsatisfiable = "ScheduleAnyway";
          labelSelector.matchLabels = k.selector;
        }
      ];
    };
  };

  deployment = color: {
    metadata = k.meta (lib.optionalAttrs (color != null) { labels.version = color; });
    spec = {
      replicas = cfg.replicas;
      revisionHistoryLimit = 5;
      selector.matchLabels = k.selector // lib.optionalAttrs (color != null) { version = color; };
      strategy = {
        type = "RollingUpdate";
        rollingUpdate = {
          maxSurge = 1;
          maxUnavailable = 0;
        };
      };
      template = podTemplate color;
    };
  };
in
{
  kubernetes.resources = {
    namespaces.${cfg.namespace}.metadata.labels = k.labels // {
      "pod-security.kubernetes.io/enforce" = "restricted";
    };
    serviceAccounts.${k.name} = {
      metadata = k.meta { };
      automountServiceAccountToken = false;
    };
    configMaps."${k.name}-config" = {
      metadata = k.meta { };
      data = configData;
    };
    deployments =
      if cfg.strategy == "rolling" then
        { ${k.name} = deployment null; }
      else if cfg.strategy == "blue-green" then
        {
          "${k.name}-blue" = deployment "blue";
          "${k.name}-green" = deployment "green";
        }
      else
        { };
    podDisruptionBudgets.${k.name} = {
      metadata = k.meta { };
      spec = {
        maxUnavailable = 1;
        selector.matchLabels = k.selector;
      };
    };
    rollouts = lib.optionalAttrs (cfg.strategy == "canary") {
      ${k.name} = {
        metadata = k.meta { };
        spec = {
          replicas = cfg.replicas;
          revisionHistoryLimit = 5;
          selector.matchLabels = k.selector;
          template = podTemplate null;
          strategy.canary = {
            stableService = k.name;
            canaryService = "${k.name}-canary";
            trafficRouting.nginx.stableIngress = k.name;
            analysis = {
              templates = [ { templateName = "${k.name}-error-rate"; } ];
              startingStep = 1;
            };
            steps = lib.concatMap (weight: [
              { setWeight = weight; }
              { pause.duration = cfg.canary.pause; }
            ]) cfg.canary.steps;
          };
        };
      };
    };
  };
}
