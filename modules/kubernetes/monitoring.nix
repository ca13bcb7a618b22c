# The dashboard and alert rules of nix/monitoring.nix, for the Prometheus Operator and Grafana's
# dashboard sidecar (it loads every ConfigMap labelled grafana_dashboard in its namespaces).
{ config, lib, ... }:
let
  cfg = config.mcp;
  k = import ./lib.nix cfg;
  monitoring = import ../../nix/monitoring.nix { inherit lib; };
in
{
  options.mcp.monitoring = {
    rules = lib.mkOption {
      type = lib.types.bool;
      default = cfg.serviceMonitor;
      description = "PrometheusRule with the alert rules (default: with the ServiceMonitor)";
    };
    dashboard = lib.mkOption {
      type = lib.types.bool;
      default = cfg.serviceMonitor;
      description = "ConfigMap with the Grafana dashboard, labelled grafana_dashboard=1";
    };
  };

  config.kubernetes.resources = {
    prometheusRules = lib.optionalAttrs cfg.monitoring.rules {
      ${k.name} = {
        metadata = k.meta { };
        spec = monitoring.rules;
      };
    };
    configMaps = lib.optionalAttrs cfg.monitoring.dashboard {
      "${k.name}-dashboard" = {
        metadata = k.meta { labels.grafana_dashboard = "1"; };
        data."mcp-server.json" = builtins.toJSON monitoring.dashboard;
      };
    };
  };
}
