# The crane build: one commonArgs and one buildDepsOnly shared by every crane derivation.
{
  pkgs,
  craneLib,
  self,
}:
let
  inherit (pkgs) lib;
  root = ../.;
  cargoToml = lib.importTOML ../Cargo.toml;

  # The package source: Cargo sources without tests/, the migrations and the data the code embeds.
  # The tests and their fixtures go only into the test source, so editing them does not rebuild
  # the package; `checks.source-includes` proves each source holds what its code includes.
  packageFiles = lib.fileset.unions [
    (lib.fileset.difference (craneLib.fileset.commonCargoSources root) ../tests)
    ../migrations
    ../src/mcp/tools.json
  ];
  testFiles = lib.fileset.unions [
    packageFiles
    ../tests
    # The metric names the alerts and dashboard use, checked against a running server.
    ../deploy/monitoring/metrics.txt
    ../deploy/monitoring/metrics-embeddings.txt
  ];
  src = lib.fileset.toSource {
    inherit root;
    fileset = packageFiles;
  };
  testSrc = lib.fileset.toSource {
    inherit root;
    fileset = testFiles;
  };

  commonArgs = {
    inherit src;
    pname = cargoToml.package.name;
    inherit (cargoToml.package) version;
    strictDeps = true;
    # Queries are checked at run time (sqlx Any); nothing needs a database at build time.
    SQLX_OFFLINE = "true";
    buildInputs = lib.optionals pkgs.stdenv.hostPlatform.isDarwin [ pkgs.libiconv ];
  };

  cargoArtifacts = craneLib.buildDepsOnly commonArgs;

  # Tests and clippy --all-targets compile the test source; the tests build with Cargo.toml's
  # `ci` profile (no fat LTO, many codegen units), whose dependencies compile once here.
  testArgs = commonArgs // {
    src = testSrc;
    CARGO_PROFILE = "ci";
  };
  testArtifacts = craneLib.buildDepsOnly testArgs;
in
{
  # Each source with the fileset it is made of (checks.source-includes reads the filesets).
  sources = [
    {
      inherit src;
      fileset = packageFiles;
    }
    {
      src = testSrc;
      fileset = testFiles;
    }
  ];
  inherit
    src
    testSrc
    commonArgs
    cargoArtifacts
    testArgs
    testArtifacts
    craneLib
    ;
  inherit (cargoToml.package) version;

  mcp-server = craneLib.buildPackage (
    commonArgs
    // {
      inherit cargoArtifacts;
      # Tests run once, in the nextest check.
      doCheck = false;
      # Reported by the mcp_server_build_info metric.
      GIT_SHA = self.rev or self.dirtyRev or "unknown";
      meta = {
        inherit (cargoToml.package) description;
        homepage = cargoToml.package.repository;
        license = with lib.licenses; [
          mit
          asl20
        ];
        mainProgram = "mcp-server";
        platforms = lib.platforms.unix;
      };
    }
  );
}
