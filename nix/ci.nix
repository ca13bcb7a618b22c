# The CI pipelines, described once and rendered for GitHub Actions and GitLab CI. `files` is pure
# (evaluated offline by nix/eval.sh); `tree` renders them with nix/render-ci.py, the same
# converter that wrote the committed files, so the drift check compares like with like.
{ pkgs }:
let
  inherit (pkgs) lib;
  gh = e: "\${{ ${e} }}";

  # Every action pinned by full commit SHA (the tag in the comment is for humans).
  actions = {
    checkout = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1"; # v7.0.1
    installNix = "cachix/install-nix-action@630ae543ea3a38a9a4166f03376c02c50f408342"; # v31.11.0
    cachix = "cachix/cachix-action@1eb2ef646ac0255473d23a5907ad7b04ce94065c"; # v17
    slack = "slackapi/slack-github-action@dcb1066f776dd043e64d0e8ba94ca15cc7e1875d"; # v4.0.0
  };
  hosts = {
    staging = "staging.mcp.example.com";
    production = "mcp.example.com";
  };

  setup = [
    {
      uses = actions.checkout;
      "with".persist-credentials = false;
    }
    { uses = actions.installNix; }
    {
      uses = actions.cachix;
      "with" = {
        name = "mcp-server";
        authToken = gh "secrets.CACHIX_AUTH_TOKEN";
      };
    }
  ];

  deployJob = environment: condition: extra: {
    name = "deploy ${environment}";
    runs-on = "ubuntu-latest";
    needs = [ "image" ];
    "if" = condition;
    environment = {
      name = environment;
      url = "https://${hosts.${environment}}";
    };
    # One deployment per environment at a time; never cancel one half-way.
    concurrency = {
      group = "deploy-${environment}";
      cancel-in-progress = false;
    };
    permissions = {
      contents = "read";
      packages = "read";
    };
    steps =
      setup
      ++ [
        {
          name = "Deploy";
          run = ''
            install -m 600 /dev/null "$RUNNER_TEMP/kubeconfig"
            printf '%s' "$KUBECONFIG_DATA" > "$RUNNER_TEMP/kubeconfig"
            KUBECONFIG="$RUNNER_TEMP/kubeconfig" nix run .#deploy-${environment}
          '';
          env = {
            KUBECONFIG_DATA = gh "secrets.KUBECONFIG";
            REGISTRY = "ghcr.io";
            IMAGE = gh "github.repository";
          };
        }
        {
          name = "Smoke test";
          run = "nix run .#default -- smoke https://${hosts.${environment}}/mcp --token \"$SMOKE_TOKEN\"";
          env.SMOKE_TOKEN = gh "secrets.SMOKE_TOKEN";
        }
      ]
      ++ extra;
  };

  github = {
    name = "CI";
    on = {
      push = {
        branches = [ "main" ];
        tags = [ "v*" ];
      };
      pull_request = { };
    };
    # Least privilege: nothing by default, each job asks for what it needs.
    permissions = { };
    concurrency = {
      group = "ci-${gh "github.ref"}";
      cancel-in-progress = gh "github.event_name == 'pull_request'";
    };
    jobs = {
      check = {
        name = "nix flake check";
        runs-on = "ubuntu-latest";
        permissions.contents = "read";
        steps = setup ++ [ { run = "nix flake check -L --show-trace"; } ];
      };
      image = {
        name = "build and push the image";
        runs-on = "ubuntu-latest";
        needs = [ "check" ];
        "if" = "github.event_name == 'push'";
        permissions = {
          contents = "read";
          packages = "write";
        };
        steps = setup ++ [
          { run = "nix build .#image -L"; }
          {
            name = "Push (tags: sha, branch, version on v* tags)";
            run = ''
              printf '%s' "$GITHUB_TOKEN" | nix shell nixpkgs#skopeo -c skopeo login ghcr.io -u "$ACTOR" --password-stdin
              nix run .#push-image
            '';
            env = {
              GITHUB_TOKEN = gh "secrets.GITHUB_TOKEN";
              ACTOR = gh "github.actor";
              REGISTRY = "ghcr.io";
              IMAGE = gh "github.repository";
              GIT_BRANCH = gh "github.ref_name";
            };
          }
        ];
      };
      deploy-staging = deployJob "staging" "github.ref == 'refs/heads/main'" [ ];
      deploy-production = deployJob "production" "startsWith(github.ref, 'refs/tags/v')" [
        {
          name = "Notify Slack";
          "if" = "always()";
          uses = actions.slack;
          "with" = {
            webhook = gh "secrets.SLACK_WEBHOOK_URL";
            webhook-type = "incoming-webhook";
            payload = ''
              text: "mcp-server ${gh "github.ref_name"} to production: ${gh "job.status"}"
            '';
          };
        }
      ];
    };
  };

  # GitLab: the same jobs; production waits for a person (when: manual).
  gitlab =
    let
      nixJob = {
        image = "nixos/nix:2.28.3";
        before_script = [ "echo 'experimental-features = nix-command flakes' >> /etc/nix/nix.conf" ];
      };
      deploy = environment: rules: {
        stage = "deploy";
        needs = [ "build-image" ];
        environment = {
          name = environment;
          url = "https://${hosts.${environment}}";
        };
        resource_group = "deploy-${environment}";
        inherit rules;
        script = [
          "nix run .#deploy-${environment}"
          "nix run .#default -- smoke https://${hosts.${environment}}/mcp --token \"$SMOKE_TOKEN\""
        ];
      }
      // nixJob;
    in
    {
      stages = [
        "test"
        "build"
        "deploy"
        "notify"
      ];
      workflow.rules = [
        { "if" = "$CI_PIPELINE_SOURCE == 'merge_request_event'"; }
        { "if" = "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"; }
        { "if" = "$CI_COMMIT_TAG =~ /^v/"; }
      ];
      check = {
        stage = "test";
        script = [ "nix flake check -L" ];
      }
      // nixJob;
      # Not `image`: that name is a GitLab keyword.
      build-image = {
        stage = "build";
        rules = [
          { "if" = "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"; }
          { "if" = "$CI_COMMIT_TAG =~ /^v/"; }
        ];
        variables = {
          REGISTRY = "$CI_REGISTRY";
          IMAGE = "$CI_PROJECT_PATH";
          GIT_BRANCH = "$CI_COMMIT_REF_SLUG";
        };
        script = [
          "nix build .#image -L"
          "printf '%s' \"$CI_REGISTRY_PASSWORD\" | nix shell nixpkgs#skopeo -c skopeo login \"$CI_REGISTRY\" -u \"$CI_REGISTRY_USER\" --password-stdin"
          "nix run .#push-image"
        ];
      }
      // nixJob;
      deploy-staging = deploy "staging" [ { "if" = "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"; } ];
      deploy-production = deploy "production" [
        {
          "if" = "$CI_COMMIT_TAG =~ /^v/";
          when = "manual";
        }
      ];
      notify-slack = {
        stage = "notify";
        image = "curlimages/curl:8.11.1";
        needs = [ "deploy-production" ];
        rules = [ { "if" = "$CI_COMMIT_TAG =~ /^v/"; } ];
        script = [
          "curl -fsS -X POST -H 'Content-Type: application/json' --data \"{\\\"text\\\":\\\"mcp-server $CI_COMMIT_TAG deployed to production\\\"}\" \"$SLACK_WEBHOOK_URL\""
        ];
      };
    };

  files = {
    ".github/workflows/ci.yml" = github;
    ".gitlab-ci.yml" = gitlab;
  };
  python = pkgs.python3.withPackages (ps: [ ps.pyyaml ]);
in
{
  inherit files;
  tree = pkgs.runCommand "mcp-server-ci" { nativeBuildInputs = [ python ]; } ''
    mkdir -p $out
    python3 ${./render-ci.py} ${pkgs.writeText "ci.json" (builtins.toJSON files)} $out
  '';
  committed = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../.github/workflows/ci.yml
      ../.gitlab-ci.yml
    ];
  };
}
