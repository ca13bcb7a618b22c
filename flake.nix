{
  description = "mcp-server: a multi-tenant knowledge-graph memory served over MCP, and everything that ships it";

  inputs = {
    # A release branch: security backports without unstable's churn; crane's CI tests against it.
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    crane.url = "github:ipetkov/crane";
    treefmt-nix = {
      url = "github:numtide/treefmt-nix";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    kubenix = {
      url = "github:hall/kubenix";
      inputs.nixpkgs.follows = "nixpkgs";
      inputs.treefmt.follows = "treefmt-nix";
    };
    advisory-db = {
      url = "github:rustsec/advisory-db";
      flake = false;
    };
  };

  # Wiring only: per-system logic lives in ./nix (package, image, checks, apps, devshell, ci,
  # kubernetes), modules in ./modules. `legacyPackages.<system>` holds the pure values (rendered
  # Kubernetes objects, generated CI pipelines, the image config) that evaluate without building.
  outputs =
    inputs@{ self, nixpkgs, ... }:
    let
      inherit (nixpkgs) lib;
      linux = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      systems = linux ++ [
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      perSystem = lib.genAttrs systems (system: import ./nix { inherit inputs self system; });
      each = attr: lib.mapAttrs (_: s: s.${attr}) perSystem;
    in
    {
      packages = each "packages";
      apps = each "apps";
      checks = each "checks";
      devShells = each "devShells";
      formatter = each "formatter";
      legacyPackages = each "pure";

      nixosModules = {
        mcp-server = import ./modules/nixos { inherit self; };
        default = self.nixosModules.mcp-server;
      };

      overlays.default = final: _prev: {
        mcp-server = self.packages.${final.stdenv.hostPlatform.system}.default;
      };
    };
}
