# The OCI image without a Dockerfile: streamLayeredImage (no image tarball in the store; layers
# are streamed to `docker load`/`podman load`/skopeo). No shell, no package manager: the binary,
# CA certificates, tzdata and a passwd/group with `mcp` (uid/gid 1000).
{
  pkgs,
  self,
  mcp-server,
  # From Cargo.toml, so that the config evaluates without building the package.
  version,
  # The local embedding model, for the image that includes it (`withModel`).
  embedding-model,
}:
let
  inherit (pkgs) lib dockerTools;
  seconds = s: s * 1000000000;
  dataDir = "/var/lib/mcp-server";

  # Pure: evaluated offline by nix/eval.sh.
  config = {
    User = "1000:1000";
    Entrypoint = [ "/bin/mcp-server" ];
    Cmd = [ "serve" ];
    WorkingDir = dataDir;
    Env = [
      "HOST=0.0.0.0"
      "PORT=8000"
      "METRICS_PORT=9090"
      "DATA_DIR=${dataDir}"
      "LOG_FORMAT=json"
      "SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt"
      "TZDIR=/share/zoneinfo"
    ];
    ExposedPorts = {
      "8000/tcp" = { };
      "9090/tcp" = { };
    };
    # There is no curl in the image: the binary checks itself.
    Healthcheck = {
      Test = [
        "CMD"
        "/bin/mcp-server"
        "healthcheck"
      ];
      Interval = seconds 10;
      Timeout = seconds 3;
      StartPeriod = seconds 5;
      Retries = 3;
    };
    Labels = {
      "org.opencontainers.image.title" = "mcp-server";
      "org.opencontainers.image.description" = "Multi-tenant knowledge-graph memory served over MCP";
      "org.opencontainers.image.source" = "https://github.com/example/mcp-server";
      "org.opencontainers.image.revision" = self.rev or self.dirtyRev or "unknown";
      "org.opencontainers.image.version" = version;
      "org.opencontainers.image.licenses" = "MIT OR Apache-2.0";
    };
  };

  passwd = dockerTools.fakeNss.override {
    extraPasswdLines = [ "mcp:x:1000:1000:mcp-server:${dataDir}:/sbin/nologin" ];
    extraGroupLines = [ "mcp:x:1000:" ];
  };
  modelDir = "/share/mcp-server/all-minilm-l6-v2";

  stream =
    {
      tag,
      extraEnv ? [ ],
      extraCommands ? "",
    }:
    dockerTools.streamLayeredImage {
      name = "mcp-server";
      inherit tag;
      # Reproducible: the same inputs give the same image digest.
      created = "1970-01-01T00:00:01Z";
      contents = [
        mcp-server
        dockerTools.caCertificates
        pkgs.tzdata
        passwd
      ];
      # /tmp is world-writable with the sticky bit; the data dir belongs to mcp. With a read-only
      # root filesystem (Kubernetes) both are emptyDir mounts instead.
      extraCommands = ''
        mkdir -p tmp ${lib.removePrefix "/" dataDir}
        chmod 1777 tmp
      ''
      + extraCommands;
      fakeRootCommands = ''
        chown 1000:1000 ${lib.removePrefix "/" dataDir}
      '';
      config = config // {
        Env = config.Env ++ extraEnv;
      };
    };
in
{
  inherit config;
  stream = stream { tag = version; };
  # The same image with the local embedding model at ${modelDir} and EMBEDDINGS=local: ~91 MB
  # more (the weights).
  withModel = stream {
    tag = "${version}-minilm";
    extraEnv = [
      "EMBEDDINGS=local"
      "EMBEDDING_MODEL_DIR=${modelDir}"
    ];
    extraCommands = ''
      mkdir -p ${lib.removePrefix "/" (dirOf modelDir)}
      cp -r ${embedding-model} ${lib.removePrefix "/" modelDir}
    '';
  };
}
