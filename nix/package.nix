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

  # Cargo sources, the migrations and the data the code embeds; the test fixtures go only into
  # the test source so that editing them does not rebuild the package.
  sources =
    extra:
    lib.fileset.toSource {
      inherit root;
      fileset = lib.fileset.unions (
        [
          (craneLib.fileset.commonCargoSources root)
          ../migrations
          ../src/mcp/tools.json
        ]
        ++ extra
      );
    };
  src = sources [ ];
  testSrc = sources [ ../tests ];

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
in
{
  inherit
    src
    testSrc
    commonArgs
    cargoArtifacts
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
