# `nix run .#<app>`. Every script is a writeShellApplication (shellcheck runs at build time) whose
# logic lives in a plain bash file next to this one, so the tests can run it without Nix.
{
  pkgs,
  build,
  image,
  kubernetes,
  ci,
  compose,
}:
let
  inherit (pkgs) lib;
  app = drv: {
    type = "app";
    program = lib.getExe drv;
    meta.description = drv.meta.description or drv.name;
  };
  script =
    name: description: runtimeInputs: env: file:
    pkgs.writeShellApplication {
      inherit name runtimeInputs;
      text = ''
        ${lib.concatStrings (lib.mapAttrsToList (k: v: "export ${k}=${lib.escapeShellArg v}\n") env)}
        ${builtins.readFile file}
      '';
      meta.description = description;
    };

  push-image = script "push-image" "Push the image built from this revision to $REGISTRY/$IMAGE" [
    pkgs.skopeo
    pkgs.git
  ] { IMAGE_STREAM = "${image.stream}"; } ./push-image.sh;

  deploy =
    environment:
    script "deploy-${environment}" "Deploy this revision to ${environment}"
      [
        pkgs.kubectl
        pkgs.argo-rollouts
        pkgs.skopeo
        pkgs.git
        pkgs.coreutils
        build.mcp-server
      ]
      {
        ENVIRONMENT_NAME = environment;
        IMAGE_STREAM = if kubernetes.withModel.${environment} then "${image.withModel}" else "${image.stream}";
        # The image with the model gets a tag of its own, as the manifests name it.
        IMAGE_SUFFIX = if kubernetes.withModel.${environment} then "-minilm" else "";
        OBJECTS = "${kubernetes.objectsJson.${environment}}";
        RENDER = "${kubernetes.render}";
        HOST = kubernetes.hosts.${environment};
        STRATEGY = kubernetes.strategies.${environment};
      }
      ./deploy.sh;

  render-manifests = script "render-manifests" "Write deploy/rendered/<environment>/ from the kubenix modules" [
    pkgs.coreutils
  ] { RENDERED = "${kubernetes.renderedTree}"; } ./render-manifests.sh;

  render-compose = script "render-compose" "Write deploy/compose/ (the single-host Docker Compose files) from nix/compose.nix" [
    pkgs.coreutils
  ] { GENERATED = "${compose.tree}"; } ./render-compose.sh;

  generate-ci = script "generate-ci" "Write .github/workflows/*.yml and .gitlab-ci.yml from nix/ci.nix" [
    pkgs.coreutils
  ] { GENERATED = "${ci.tree}"; } ./generate-ci.sh;

  dev-stack = import ./dev-stack.nix { inherit pkgs; };
in
{
  default = app build.mcp-server;
  push-image = app push-image;
  deploy-staging = app (deploy "staging");
  deploy-production = app (deploy "production");
  render-manifests = app render-manifests;
  render-compose = app render-compose;
  generate-ci = app generate-ci;
  dev-stack = app dev-stack;
}
