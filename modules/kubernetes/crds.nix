# Custom resources as typed kubenix custom types: a field that does not exist, or has the wrong
# type, fails evaluation instead of reaching the cluster. Instances: the canary's analysis, the
# ServiceMonitor and the ExternalSecret here, the PrometheusRule in monitoring.nix.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.mcp;
  k = import ./lib.nix cfg;
  opt = type: mkOption { inherit type; };
  optional = type: mkOption { type = types.nullOr type; default = null; };
  submodule = options: types.submodule { inherit options; };

  rolloutSpec = {
    replicas = opt types.int;
    revisionHistoryLimit = optional types.int;
    selector = opt types.attrs;
    template = opt types.attrs;
    strategy.canary = {
      stableService = opt types.str;
      canaryService = opt types.str;
      trafficRouting.nginx.stableIngress = opt types.str;
      analysis = {
        templates = opt (types.listOf (submodule { templateName = opt types.str; }));
        startingStep = optional types.int;
      };
      steps = opt (types.listOf (submodule {
        setWeight = optional types.int;
        pause = optional (submodule { duration = optional types.str; });
      }));
    };
  };

  analysisTemplateSpec.metrics = opt (types.listOf (submodule {
    name = opt types.str;
    interval = opt types.str;
    count = optional types.int;
    failureLimit = opt types.int;
    successCondition = opt types.str;
    provider.prometheus = {
      address = opt types.str;
      query = opt types.str;
    };
  }));

  serviceMonitorSpec = {
    selector.matchLabels = opt (types.attrsOf types.str);
    endpoints = opt (types.listOf (submodule {
      port = opt types.str;
      path = opt types.str;
      interval = opt types.str;
    }));
  };

  prometheusRuleSpec.groups = opt (types.listOf (submodule {
    name = opt types.str;
    rules = opt (types.listOf (submodule {
      alert = opt types.str;
      expr = opt types.str;
      for = opt types.str;
      labels = opt (types.attrsOf types.str);
      annotations = opt (types.attrsOf types.str);
    }));
  }));

  externalSecretSpec = {
    refreshInterval = opt types.str;
    secretStoreRef = {
      name = opt types.str;
      kind = opt (types.enum [ "SecretStore" "ClusterSecretStore" ]);
    };
    target = {
      name = opt types.str;
      creationPolicy = opt (types.enum [ "Owner" "Merge" "Orphan" "None" ]);
    };
    dataFrom = opt (types.listOf (submodule { extract.key = opt types.str; }));
  };

in
{
  kubernetes.customTypes = [
    { group = "argoproj.io"; version = "v1alpha1"; kind = "Rollout"; attrName = "rollouts"; module.options = rolloutSpec; }
    { group = "argoproj.io"; version = "v1alpha1"; kind = "AnalysisTemplate"; attrName = "analysisTemplates"; module.options = analysisTemplateSpec; }
    { group = "monitoring.coreos.com"; version = "v1"; kind = "ServiceMonitor"; attrName = "serviceMonitors"; module.options = serviceMonitorSpec; }
    { group = "monitoring.coreos.com"; version = "v1"; kind = "PrometheusRule"; attrName = "prometheusRules"; module.options = prometheusRuleSpec; }
    { group = "external-secrets.io"; version = "v1"; kind = "ExternalSecret"; attrName = "externalSecrets"; module.options = externalSecretSpec; }
  ];

  kubernetes.resources = {
    # Aborts the canary when our own tool-call error rate (mcp_tool_calls_total) is too high.
    analysisTemplates = lib.optionalAttrs (cfg.strategy == "canary") {
      "${k.name}-error-rate" = {
        metadata = k.meta { };
        spec.metrics = [
          {
            name = "tool-call-error-rate";
            interval = "1m";
            count = 5;
            failureLimit = 1;
            successCondition = "len(result) == 0 || isNaN(result[0]) || result[0] <= ${toString cfg.canary.maxErrorRate}";
            provider.prometheus = {
              address = cfg.canary.prometheusAddress;
              query = ''
                sum(rate(mcp_tool_calls_total{namespace="${cfg.namespace}",outcome="internal_error"}[2m]))
                /
                sum(rate(mcp_tool_calls_total{namespace="${cfg.namespace}"}[2m]))
              '';
            };
          }
        ];
      };
    };

    serviceMonitors = lib.optionalAttrs cfg.serviceMonitor {
      ${k.name} = {
        metadata = k.meta { };
        spec = {
          selector.matchLabels = k.selector;
          endpoints = [ { port = "metrics"; path = "/metrics"; interval = "30s"; } ];
        };
      };
    };

    externalSecrets = lib.optionalAttrs cfg.externalSecret.enable {
      ${cfg.secretName} = {
        metadata = k.meta { };
        spec = {
          refreshInterval = "1h";
          secretStoreRef = { name = cfg.externalSecret.store; kind = "ClusterSecretStore"; };
          target = { name = cfg.secretName; creationPolicy = "Owner"; };
          dataFrom = [ { extract.key = cfg.externalSecret.path; } ];
        };
      };
    };
  };

}
