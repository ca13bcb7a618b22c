# `nix fmt` and the treefmt check: Nix, Rust and TOML.
_: {
  projectRootFile = "flake.nix";
  programs = {
    nixfmt.enable = true;
    deadnix.enable = true;
    rustfmt.enable = true;
    taplo.enable = true;
  };
  settings.global.excludes = [
    "deploy/rendered/**"
    ".github/**"
    ".gitlab-ci.yml"
  ];
}
