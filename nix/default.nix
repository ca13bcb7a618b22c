# Everything per system; flake.nix only maps it over the systems.
{
  inputs,
  self,
  system,
}:
let
  pkgs = import inputs.nixpkgs { inherit system; };
  inherit (pkgs) lib;
  inherit (pkgs.stdenv.hostPlatform) isLinux;

  craneLib = inputs.crane.mkLib pkgs;
  build = import ./package.nix { inherit pkgs craneLib self; };
  embedding-model = import ./embedding-model.nix { inherit pkgs; };
  image = import ./image.nix {
    inherit pkgs self embedding-model;
    inherit (build) mcp-server version;
  };
  kubernetes = import ./kubernetes.nix {
    inherit pkgs inputs;
    inherit (build) version;
  };
  ci = import ./ci.nix { inherit pkgs; };
  compose = import ./compose.nix {
    inherit pkgs;
    inherit (build) version;
  };
  checks = import ./checks.nix {
    inherit
      pkgs
      inputs
      self
      build
      kubernetes
      ci
      compose
      ;
  };
  apps = import ./apps.nix {
    inherit
      pkgs
      build
      image
      kubernetes
      ci
      compose
      ;
  };
  treefmt = inputs.treefmt-nix.lib.evalModule pkgs ./treefmt.nix;
in
{
  packages = {
    default = build.mcp-server;
    inherit (build) mcp-server;
    inherit embedding-model;
  }
  // lib.optionalAttrs isLinux {
    image = image.stream;
    image-with-model = image.withModel;
    manifests-staging = kubernetes.manifests.staging;
    manifests-production = kubernetes.manifests.production;
  };

  inherit apps;
  checks = checks // {
    treefmt = treefmt.config.build.check self;
  };
  # The Rust checks' tools (toolchain, PostgreSQL, Redis, cargo-audit, cargo-deny), not the VM
  # tests and what they pull in.
  devShells.default = import ./devshell.nix {
    inherit pkgs craneLib;
    checks = {
      inherit (checks)
        clippy
        nextest
        audit
        deny
        ;
    };
  };
  formatter = treefmt.config.build.wrapper;

  # Evaluates without building anything: what .ci/checks/nix.sh compares and asserts.
  pure = {
    imageConfig = image.config;
    kubernetes = kubernetes.objects;
    kubernetesModuleTest = import ./kubernetes-eval/test.nix {
      inherit lib;
      inherit (kubernetes) eval;
    };
    ci = ci.files;
    monitoring = import ./monitoring.nix { inherit lib; };
    compose = compose.files;
  }
  // lib.optionalAttrs isLinux {
    nixosModuleTest = import ./nixos-eval/test.nix {
      inherit lib system;
      inherit (inputs.nixpkgs.lib) nixosSystem;
      module = self.nixosModules.mcp-server;
    };
    # The README's NixOS example on a minimal host (its hardware-configuration.nix stand-in).
    exampleHost = inputs.nixpkgs.lib.nixosSystem {
      inherit system;
      modules = [
        self.nixosModules.default
        ./examples/mcp.nix
        {
          nixpkgs.pkgs = pkgs;
          boot.loader.grub.device = "/dev/vda";
          fileSystems."/" = {
            device = "/dev/vda1";
            fsType = "ext4";
          };
          system.stateVersion = "26.05";
        }
      ];
    };
  };
}
