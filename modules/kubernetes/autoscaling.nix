# HorizontalPodAutoscaler on whichever object runs the pods.
{ config, lib, ... }:
let
  cfg = config.mcp;
  k = import ./lib.nix cfg;
  target =
    if cfg.strategy == "canary" then
      { apiVersion = "argoproj.io/v1alpha1"; kind = "Rollout"; name = k.name; }
    else if cfg.strategy == "blue-green" then
      { apiVersion = "apps/v1"; kind = "Deployment"; name = "${k.name}-${cfg.activeColor}"; }
    else
      { apiVersion = "apps/v1"; kind = "Deployment"; name = k.name; };
  utilization = name: average: {
    type = "Resource";
    resource = {
      inherit name;
      target = {
        type = "Utilization";
        averageUtilization = average;
      };
    };
  };
in
{
  kubernetes.resources.horizontalPodAutoscalers = lib.optionalAttrs cfg.hpa.enable {
    ${k.name} = {
      metadata = k.meta { };
      spec = {
        scaleTargetRef = target;
        minReplicas = cfg.hpa.min;
        maxReplicas = cfg.hpa.max;
        metrics = [
          (utilization "cpu" cfg.hpa.cpu)
          (utilization "memory" cfg.hpa.memory)
        ];
        # The guide's behaviour: scale up fast, scale down slowly.
        behavior = {
          scaleUp = {
            stabilizationWindowSeconds = 60;
            policies = [
              { type = "Percent"; value = 100; periodSeconds = 60; }
              { type = "Pods"; value = 2; periodSeconds = 60; }
            ];
            selectPolicy = "Max";
          };
          scaleDown = {
            stabilizationWindowSeconds = 300;
            policies = [ { type = "Percent"; value = 50; periodSeconds = 60; } ];
            selectPolicy = "Min";
          };
        };
      };
    };
  };
}
