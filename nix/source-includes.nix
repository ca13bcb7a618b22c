# A crane derivation compiles only what its source holds: every file that a Rust file there names
# in include_str!, include_bytes! or sqlx::migrate! must be in that same source. Checked while
# evaluating, from the filesets the sources are made of (`nix flake check --no-build` reads no
# store path), so a missing file fails the check by name.
{
  pkgs,
  root,
  # Each source the build makes, with the fileset it was made from.
  known,
  # Derivations that compile the test targets too (clippy --all-targets, nextest): their source
  # must hold every test file, or they would check less than they say without failing.
  withTests ? [ ],
}:
# name -> the `src` a derivation that compiles Rust was given.
derivations:
let
  inherit (pkgs) lib;
  plain = builtins.unsafeDiscardStringContext;
  captures = regex: text: lib.filter lib.isList (builtins.split regex text);
  relative = path: lib.removePrefix "${toString root}/" (toString path);

  filesetOf =
    name: src:
    let
      found = lib.findFirst (k: plain "${k.src}" == plain "${src}") null known;
    in
    if found == null then
      throw "source-includes: the source of ${name} is none of the build's sources"
    else
      found.fileset;

  # What one Rust file needs: include_* paths are relative to the file, migrate! paths to the
  # crate root. A migrate! directory is present when any file below it is.
  needs =
    file:
    let
      text = builtins.readFile file;
    in
    map (c: {
      path = relative (dirOf file + "/${lib.elemAt c 1}");
      dir = false;
    }) (captures ''include_(str|bytes)!\([[:space:]]*"([^"]+)"'' text)
    ++ map (c: {
      path = relative (root + "/${lib.elemAt c 0}");
      dir = true;
    }) (captures ''migrate!\([[:space:]]*"([^"]+)"'' text);

  missingIn =
    name: src:
    let
      files = map relative (lib.fileset.toList (filesetOf name src));
      present =
        need:
        if need.dir then lib.any (lib.hasPrefix "${need.path}/") files else lib.elem need.path files;
      rustFiles = lib.filter (lib.hasSuffix ".rs") (lib.fileset.toList (filesetOf name src));
    in
    map (need: "${name}: ${need.path}") (
      lib.filter (need: !present need) (lib.concatMap needs rustFiles)
    );

  testFiles = map relative (lib.fileset.toList (lib.fileset.fileFilter (f: f.hasExt "rs") (root + "/tests")));
  missingTests =
    name:
    let
      files = map relative (lib.fileset.toList (filesetOf name derivations.${name}));
    in
    map (f: "${name}: ${f}") (lib.filter (f: !lib.elem f files) testFiles);

  missing =
    lib.concatLists (lib.mapAttrsToList missingIn derivations) ++ lib.concatMap missingTests withTests;
in
if missing == [ ] then
  pkgs.runCommand "source-includes" { } "touch $out"
else
  throw "files that Rust code includes are missing from the source that compiles it:\n  ${lib.concatStringsSep "\n  " missing}"
