# Everything `nix flake check` runs. The crane checks share build.commonArgs and
# build.cargoArtifacts (the tests: build.testArgs and build.testArtifacts), so dependencies
# compile once per profile.
{
  pkgs,
  inputs,
  self,
  build,
  kubernetes,
  ci,
  compose,
}:
let
  inherit (pkgs) lib;
  inherit (build) craneLib commonArgs cargoArtifacts;
  withDeps = args: commonArgs // { inherit cargoArtifacts; } // args;

  # Committed generated files must equal what Nix generates now.
  drift =
    name: app: generated: committed:
    pkgs.runCommand "${name}-drift" { } ''
      if ! diff -ru ${committed} ${generated}; then
        echo "${name} is out of date: run nix run .#${app}" >&2
        exit 1
      fi
      touch $out
    '';

  # VM tests: every nix/tests/*.nix, Linux only.
  vmTests = lib.optionalAttrs pkgs.stdenv.hostPlatform.isLinux (
    lib.mapAttrs' (
      file: _:
      lib.nameValuePair "vm-${lib.removeSuffix ".nix" file}" (
        pkgs.testers.runNixOSTest (import (./tests + "/${file}") { inherit self; })
      )
    ) (lib.filterAttrs (f: t: t == "regular" && lib.hasSuffix ".nix" f) (builtins.readDir ./tests))
  );

  # --all-targets compiles the tests too, so clippy needs the test source and its fixtures.
  clippy = craneLib.cargoClippy (withDeps {
    src = build.testSrc;
    cargoClippyExtraArgs = "--all-targets -- --deny warnings";
  });

  doc = craneLib.cargoDoc (withDeps {
    RUSTDOCFLAGS = "--deny warnings";
  });

  # PostgreSQL and Redis run inside the check's sandbox, on loopback, for the whole test run.
  nextest = craneLib.cargoNextest (
    build.testArgs
    // {
      cargoArtifacts = build.testArtifacts;
      nativeBuildInputs = [
        pkgs.postgresql
        pkgs.redis
        pkgs.openssl
      ];
      preCheck = ''
        export PGDATA=$TMPDIR/pgdata
        initdb --username=postgres --auth=trust --no-instructions >/dev/null
        pg_ctl --wait --log=$TMPDIR/postgres.log \
          --options="-c listen_addresses=127.0.0.1 -c port=5432 -c unix_socket_directories=$TMPDIR" start
        redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no --dir $TMPDIR --daemonize yes
        export MCP_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
        export MCP_TEST_REDIS_URL=redis://127.0.0.1:6379
      '';
      postCheck = ''
        pg_ctl --wait stop
        redis-cli -p 6379 shutdown nosave || true
      '';
      cargoNextestExtraArgs = "--no-tests=fail";
    }
  );
in
{
  package = build.mcp-server;
  inherit clippy doc nextest;

  rustfmt = craneLib.cargoFmt { inherit (build) src; };

  audit = craneLib.cargoAudit {
    inherit (build) src version;
    inherit (inputs) advisory-db;
    pname = "mcp-server";
  };

  deny = craneLib.cargoDeny {
    src = lib.fileset.toSource {
      root = ../.;
      fileset = lib.fileset.unions [
        (craneLib.fileset.commonCargoSources ../.)
        ../deny.toml
      ];
    };
  };

  # The source of each derivation that compiles Rust, as that derivation gets it.
  source-includes =
    import ./source-includes.nix
      {
        inherit pkgs;
        root = ../.;
        known = build.sources;
        withTests = [
          "clippy"
          "nextest"
        ];
      }
      {
        package = build.mcp-server.src;
        clippy = clippy.src;
        doc = doc.src;
        nextest = nextest.src;
      };

  manifests-drift = drift "manifests" "render-manifests" kubernetes.renderedTree ../deploy/rendered;
  ci-drift = drift "ci" "generate-ci" ci.tree ci.committed;
  compose-drift = drift "compose" "render-compose" compose.tree compose.committed;
}
// vmTests
