# The Grafana dashboard and the Prometheus alert rules, as values: Kubernetes (a labelled
# ConfigMap and a PrometheusRule), the NixOS module and deploy/monitoring/ all take them from here.
# Every metric is named through `m`, so a misspelt one fails evaluation, and `metrics` (the
# list the server must expose) is what tests/http.rs checks against a running server's /metrics.
{ lib }:
let
  metrics = [
    "http_requests_total"
    "http_request_duration_seconds"
    "mcp_tool_calls_total"
    "mcp_tool_call_duration_seconds"
    "db_operation_duration_seconds"
    "db_pool_connections"
    "graph_cache_reads_total"
    "graph_cache_drops_total"
    "rate_limited_requests_total"
    "rate_limit_fallback_total"
    "rate_limit_degraded"
    "auth_failures_total"
    "load_shed_requests_total"
    "mcp_sessions_active"
    "mcp_sse_streams"
    "mcp_server_start_time_seconds"
    "db_storage_full"
    "tenant_limited_requests_total"
    "body_read_timeouts_total"
  ];
  # Exposed once EMBEDDINGS is on and the embedder has been used (tests/semantic.rs checks them).
  embeddingMetrics = [
    "embedding_queue_entities"
    "embedded_entities_total"
    "embedding_failures_total"
    "embedding_batch_duration_seconds"
    "search_degraded_total"
  ];
  m = lib.genAttrs (metrics ++ embeddingMetrics) lib.id;

  mcpRequests = ''${m.http_requests_total}{route="/mcp"}'';
  notReady = ''${m.http_requests_total}{route="/health/ready",status="503"}'';
  ready = ''${m.http_requests_total}{route="/health/ready",status="200"}'';
  p = q: metric: by: ''histogram_quantile(${q}, sum by (le${by}) (rate(${metric}_bucket[5m])))'';

  alert = name: expr: for: severity: summary: {
    alert = name;
    inherit expr for;
    labels.severity = severity;
    annotations.summary = summary;
  };

  rules = {
    groups = [
      {
        name = "mcp-server";
        rules = [
          (alert "McpServerErrorRatio"
            ''sum by (job) (rate(${mcpRequests}[5m])) > 0 and sum by (job) (rate(${m.http_requests_total}{route="/mcp",status=~"5.."}[5m])) / sum by (job) (rate(${mcpRequests}[5m])) > 0.05''
            "5m" "critical" "More than 5% of /mcp requests fail with 5xx")
          (alert "McpServerToolLatencyHigh" "${p "0.99" "${m.mcp_tool_call_duration_seconds}" ", job"} > 1"
            "10m" "warning" "Tool calls' p99 latency is above 1 s")
          # Readiness fails when the database is unreachable (or the schema is incompatible);
          # a drain fails it too, but for seconds, not minutes.
          (alert "McpServerDatabaseUnavailable" "sum by (instance) (rate(${notReady}[2m])) > 0 and sum by (instance) (rate(${ready}[2m])) == 0"
            "2m" "critical" "A replica has failed readiness for 2 minutes: its database is unavailable")
          (alert "McpServerReadinessFlapping" "sum by (instance) (increase(${notReady}[15m])) > 0 and sum by (instance) (increase(${ready}[15m])) > 0"
            "15m" "warning" "A replica keeps going in and out of readiness")
          (alert "McpServerRateLimitDegraded" "max by (instance) (${m.rate_limit_degraded}) > 0"
            "5m" "warning" "Redis is unreachable: rate limits are per replica, not shared")
          (alert "McpServerRestarting" "changes(${m.mcp_server_start_time_seconds}[30m]) > 2"
            "0m" "warning" "A replica restarted more than twice in 30 minutes")
          (alert "McpServerStorageFull" "max by (instance) (${m.db_storage_full}) > 0"
            "1m" "critical" "Writes fail for lack of disk space (reads still work)")
          (alert "McpServerGraphCacheThrash"
            ''sum by (job) (rate(${m.graph_cache_reads_total}[10m])) > 1 and sum by (job) (rate(${m.graph_cache_reads_total}{result=~"load|too_large|cold|load_failed|failing"}[10m])) / sum by (job) (rate(${m.graph_cache_reads_total}[10m])) > 0.2''
            "15m" "warning" "Over 20% of reads load a graph or miss the cache: GRAPH_CACHE_BYTES is too small")
          # Search by meaning degrades rather than fails: these say it has, and for how long.
          (alert "McpServerEmbeddingBacklog" "max by (job) (min_over_time(${m.embedding_queue_entities}[15m])) > 1000"
            "15m" "warning" "Over 1,000 entities have waited 15 minutes to be embedded: search by meaning misses them")
          (alert "McpServerEmbedderFailing"
            "sum by (job) (rate(${m.embedding_failures_total}[10m])) > 0 unless sum by (job) (rate(${m.embedded_entities_total}[10m])) > 0"
            "10m" "warning" "Every embeddings batch fails: new and changed entities are found by words only")
          (alert "McpServerSearchDegraded" "sum by (job) (rate(${m.search_degraded_total}[10m])) > 0"
            "10m" "warning" "Searches by meaning fall back to substrings: queries cannot be embedded")
        ];
      }
    ];
  };

  # A timeseries panel per row of the grid, two to a row.
  panel = i: title: unit: targets: {
    id = i + 1;
    type = "timeseries";
    inherit title;
    datasource = {
      type = "prometheus";
      uid = "\${datasource}";
    };
    gridPos = {
      h = 8;
      w = 12;
      x = 12 * lib.mod i 2;
      y = 8 * (i / 2);
    };
    fieldConfig.defaults.unit = unit;
    targets = lib.imap0 (n: t: {
      refId = lib.elemAt [ "A" "B" "C" "D" ] n;
      expr = lib.elemAt t 0;
      legendFormat = lib.elemAt t 1;
    }) targets;
  };
  panels = [
    [ "Requests by status" "reqps" [ [ "sum by (status) (rate(${mcpRequests}[5m]))" "{{status}}" ] ] ]
    [ "Error ratio (5xx)" "percentunit" [
      [ ''sum(rate(${m.http_requests_total}{route="/mcp",status=~"5.."}[5m])) / sum(rate(${mcpRequests}[5m]))'' "5xx" ]
    ] ]
    [ "Tool calls by tool and outcome" "ops" [ [ "sum by (tool, outcome) (rate(${m.mcp_tool_calls_total}[5m]))" "{{tool}} {{outcome}}" ] ] ]
    [ "Tool latency p50 / p99" "s" [
      [ (p "0.5" m.mcp_tool_call_duration_seconds ", tool") "p50 {{tool}}" ]
      [ (p "0.99" m.mcp_tool_call_duration_seconds ", tool") "p99 {{tool}}" ]
    ] ]
    [ "Database latency p99 by operation" "s" [ [ (p "0.99" m.db_operation_duration_seconds ", operation") "{{operation}}" ] ] ]
    [ "Database pool" "short" [ [ "sum by (state) (${m.db_pool_connections})" "{{state}}" ] ] ]
    [ "Graph cache hit ratio" "percentunit" [
      [ ''sum(rate(${m.graph_cache_reads_total}{result="hit"}[5m])) / sum(rate(${m.graph_cache_reads_total}[5m]))'' "hit" ]
      [ "sum(rate(${m.graph_cache_drops_total}[5m]))" "drops/s" ]
    ] ]
    [ "Rate limits and load shedding" "ops" [
      [ "sum(rate(${m.rate_limited_requests_total}[5m]))" "limited" ]
      [ "sum(rate(${m.load_shed_requests_total}[5m]))" "shed" ]
    ] ]
    [ "Auth failures by reason" "ops" [ [ "sum by (reason) (rate(${m.auth_failures_total}[5m]))" "{{reason}}" ] ] ]
    [ "Sessions and SSE streams" "short" [
      [ "sum(${m.mcp_sessions_active})" "sessions" ]
      [ "sum by (kind) (${m.mcp_sse_streams})" "streams {{kind}}" ]
    ] ]
    [ "Redis degradation" "short" [
      [ "max(${m.rate_limit_degraded})" "degraded" ]
      [ "sum(rate(${m.rate_limit_fallback_total}[5m]))" "fallback decisions/s" ]
    ] ]
    [ "Refused: tenant shares, slow bodies, storage full" "short" [
      [ "sum by (limit) (rate(${m.tenant_limited_requests_total}[5m]))" "tenant {{limit}}/s" ]
      [ "sum(rate(${m.body_read_timeouts_total}[5m]))" "slow bodies/s" ]
      [ "max(${m.db_storage_full})" "storage full" ]
    ] ]
    [ "Replica restarts (30m)" "short" [ [ "changes(${m.mcp_server_start_time_seconds}[30m])" "{{instance}}" ] ] ]
    [ "Search by meaning: queue, embedding, fallbacks" "short" [
      [ "max(${m.embedding_queue_entities})" "queued entities" ]
      [ "sum(rate(${m.embedded_entities_total}[5m]))" "embedded/s" ]
      [ "sum by (reason) (rate(${m.embedding_failures_total}[5m]))" "failed batches/s {{reason}}" ]
      [ "sum by (reason) (rate(${m.search_degraded_total}[5m]))" "degraded searches/s {{reason}}" ]
    ] ]
  ];

  dashboard = {
    uid = "mcp-server";
    title = "mcp-server";
    tags = [ "mcp" ];
    schemaVersion = 39;
    time = {
      from = "now-6h";
      to = "now";
    };
    refresh = "30s";
    templating.list = [
      {
        name = "datasource";
        type = "datasource";
        query = "prometheus";
      }
    ];
    panels = lib.imap0 (i: row: panel i (lib.elemAt row 0) (lib.elemAt row 1) (lib.elemAt row 2)) panels;
  };
in
{
  inherit metrics embeddingMetrics rules dashboard;
}
