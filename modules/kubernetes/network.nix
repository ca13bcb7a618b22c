# Service(s), Ingress and NetworkPolicy.
{ config, lib, ... }:
let
  cfg = config.mcp;
  k = import ./lib.nix cfg;

  service = selector: {
    metadata = k.meta { };
    spec = {
      type = "ClusterIP";
      # Any replica serves any request: no affinity needed.
      sessionAffinity = "None";
      inherit selector;
      ports = [
        { name = "http"; port = 80; targetPort = "http"; protocol = "TCP"; }
        { name = "metrics"; port = k.ports.metrics; targetPort = "metrics"; protocol = "TCP"; }
      ];
    };
  };
  namespaceSelector = ns: { namespaceSelector.matchLabels."kubernetes.io/metadata.name" = ns; };
  egressTo = port: { ports = [ { inherit port; protocol = "TCP"; } ]; };
  # An embeddings endpoint's port: the URL's own, or its scheme's (a missing URL is the
  # ConfigMap's error to report).
  endpointPort =
    let
      parts = builtins.match "(https?)://[^/:]+(:([0-9]+))?(/.*)?" cfg.embeddings.url;
    in
    if cfg.embeddings.url == null then
      443
    else if parts == null then
      throw "mcp.embeddings.url is not an http(s) URL: ${cfg.embeddings.url}"
    else if builtins.elemAt parts 2 != null then
      lib.toInt (builtins.elemAt parts 2)
    else if builtins.head parts == "https" then
      443
    else
      80;
in
{
  kubernetes.resources = {
    services = {
      ${k.name} = service (k.selector // lib.optionalAttrs (cfg.strategy == "blue-green") { version = cfg.activeColor; });
    }
    // lib.optionalAttrs (cfg.strategy == "canary") { "${k.name}-canary" = service k.selector; };

    ingresses.${k.name} = {
      metadata = k.meta {
        annotations = {
          "nginx.ingress.kubernetes.io/ssl-redirect" = lib.boolToString cfg.tls.enable;
          "nginx.ingress.kubernetes.io/force-ssl-redirect" = lib.boolToString cfg.tls.enable;
          # The guide's per-client limits, in front of the per-tenant limit in the server.
          "nginx.ingress.kubernetes.io/limit-rps" = "10";
          "nginx.ingress.kubernetes.io/limit-connections" = "20";
          # Streamable HTTP: SSE responses must not be buffered and may stay open.
          "nginx.ingress.kubernetes.io/proxy-buffering" = "off";
          "nginx.ingress.kubernetes.io/proxy-request-buffering" = "off";
          "nginx.ingress.kubernetes.io/proxy-read-timeout" = "3600";
          "nginx.ingress.kubernetes.io/proxy-send-timeout" = "3600";
          "nginx.ingress.kubernetes.io/proxy-body-size" = "1m";
        }
        // lib.optionalAttrs cfg.tls.enable { "cert-manager.io/cluster-issuer" = cfg.tls.clusterIssuer; };
      };
      spec = {
        ingressClassName = "nginx";
        tls = lib.optionals cfg.tls.enable [
          {
            hosts = [ cfg.host ];
            secretName = "${k.name}-tls";
          }
        ];
        rules = [
          {
            inherit (cfg) host;
            http.paths = map (path: {
              inherit path;
              pathType = "Prefix";
              backend.service = {
                inherit (k) name;
                port.name = "http";
              };
            }) [ "/mcp" "/.well-known/oauth-protected-resource" ];
          }
        ];
      };
    };

    networkPolicies = lib.optionalAttrs cfg.networkPolicy.enable {
      ${k.name} = {
        metadata = k.meta { };
        spec = {
          podSelector.matchLabels = k.selector;
          policyTypes = [ "Ingress" "Egress" ];
          ingress = [
            {
              from = [ (namespaceSelector cfg.networkPolicy.ingressNamespace) ];
              ports = [ { port = k.ports.http; protocol = "TCP"; } ];
            }
            {
              from = [ (namespaceSelector cfg.networkPolicy.monitoringNamespace) ];
              ports = [ { port = k.ports.metrics; protocol = "TCP"; } ];
            }
          ];
          egress = [
            {
              to = [ (namespaceSelector "kube-system") ];
              ports = [ { port = 53; protocol = "UDP"; } { port = 53; protocol = "TCP"; } ];
            }
            # CloudNativePG: only its instances (the -rw Service's endpoints); otherwise anywhere.
            ((egressTo 5432) // lib.optionalAttrs cfg.database.cloudnativepg.enable {
              to = [ { podSelector.matchLabels."cnpg.io/cluster" = cfg.database.cloudnativepg.name; } ];
            })
            (egressTo 6379)
            (egressTo 4318)
            # Token validation: JWKS and introspection over HTTPS.
            (egressTo 443)
          ]
          ++ lib.optional (cfg.embeddings.mode == "endpoint" && endpointPort != 443) (egressTo endpointPort);
        };
      };
    };
  };
}
