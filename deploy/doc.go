// Package deploy holds what operators install next to hopguard: the Grafana
// dashboard (grafana/hopguard.json), the Prometheus recording and alerting
// rules (prometheus/rules.yaml) and an example Prometheus configuration
// (prometheus/prometheus.yaml).
//
// The package has no Go API. Its tests hold those files to the metrics
// contract: every PromQL expression parses with Prometheus's own parser and
// names only metrics the code registers or rules define, the dashboard is a
// valid Grafana model, and, against a real Prometheus scraping a running
// `hopguard run`, every dashboard query returns data.
package deploy
