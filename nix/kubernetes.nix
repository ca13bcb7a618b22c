# Kubernetes manifests from the kubenix modules in ../modules/kubernetes, per environment.
# `objects` is pure (nix/eval.sh compares it with deploy/rendered/); the rest builds.
{
  pkgs,
  inputs,
  version,
}:
let
  inherit (pkgs) lib;
  environments = [
    "staging"
    "production"
  ];
  variants = {
    staging = [ ../modules/kubernetes/staging.nix ];
    production = [ ../modules/kubernetes/production.nix ];
    # Not an environment: renders the blue-green strategy so that it is validated and
    # policy-tested like the others.
    staging-blue-green = [
      ../modules/kubernetes/staging.nix
      { mcp.strategy = lib.mkForce "blue-green"; }
    ];
  };
  evalVariant =
    modules:
    (inputs.kubenix.evalModules.${pkgs.stdenv.hostPlatform.system} {
      module =
        { kubenix, ... }:
        {
          imports = [ kubenix.modules.k8s ] ++ modules;
          kubenix.project = "mcp-server";
          kubernetes.version = "1.33";
          mcp.image.tag = lib.mkDefault version;
        };
    }).config;
  configs = lib.mapAttrs (_: evalVariant) variants;
  objects = lib.mapAttrs (_: c: c.kubernetes.objects) configs;

  python = pkgs.python3.withPackages (ps: [ ps.pyyaml ]);
  objectsJson = lib.mapAttrs (env: list: pkgs.writeText "${env}.json" (builtins.toJSON list)) objects;
  # One YAML file per object, named <kind>-<name>.yaml: small reviewable diffs.
  render =
    env:
    pkgs.runCommand "mcp-server-manifests-${env}" { nativeBuildInputs = [ python ]; } ''
      python3 ${./render-yaml.py} ${objectsJson.${env}} $out
    '';
in
{
  inherit objects objectsJson;
  # A configuration from kubenix modules, for the evaluation tests (nix/kubernetes-eval).
  eval = evalVariant;
  manifests = lib.genAttrs environments render;
  renderedTree = pkgs.linkFarm "mcp-server-rendered" (
    map (variant: {
      name = variant;
      path = render variant;
    }) (lib.attrNames variants)
  );
  # Used by the deploy script to render with another image tag.
  render = pkgs.writeShellScript "render" ''
    exec ${python}/bin/python3 ${./render-yaml.py} "$@"
  '';
  hosts = lib.mapAttrs (_: c: c.mcp.host) configs;
  strategies = lib.mapAttrs (_: c: c.mcp.strategy) configs;
  # Environments that run the model in the server deploy the image that includes it.
  withModel = lib.mapAttrs (_: c: c.mcp.embeddings.mode == "local") configs;
}
