//! The Grafana dashboard in the repository (`docs/grafana/switchboard.json`) queries only
//! metrics the gateway exports: every `switchboard_*` and `process_*` name in its PromQL is a
//! series on a running gateway's `/metrics` (after a session, a refused message and a reload,
//! which is when the lazily created families exist).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use serde_json::{Value, json};
use switchboard_tests::{TEST_CONFIG, TestGateway, WsClient, http_get, repo_root, temp_dir};

/// Every PromQL text in the dashboard: panel targets' `expr` and variables' queries.
fn queries(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "definition", Value::String(q)) => out.push(q.clone()),
                    ("query", Value::Object(q)) => {
                        if let Some(Value::String(q)) = q.get("query") {
                            out.push(q.clone());
                        }
                    }
                    _ => queries(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

/// The metric names a PromQL text uses (ours and the process collector's).
fn metric_names(query: &str) -> impl Iterator<Item = &str> {
    query
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("switchboard_") || t.starts_with("process_"))
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_exported() {
    let text = std::fs::read_to_string(repo_root().join("docs/grafana/switchboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(dashboard["title"], "Switchboard");
    let panels = dashboard["panels"].as_array().unwrap();
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    let mut all = Vec::new();
    queries(&dashboard, &mut all);
    let names: BTreeSet<&str> = all.iter().flat_map(|q| metric_names(q)).collect();
    for expected in [
        "switchboard_build_info",
        "process_resident_memory_bytes",
        "switchboard_sessions",
    ] {
        assert!(
            names.contains(expected),
            "the dashboard should chart {expected}: {names:?}"
        );
    }

    let gw = TestGateway::start().await;
    let mut ant = WsClient::connect(&gw.ant_url("LiveApp")).await;
    ant.send_text("not json").await;
    ant.recv_text().await;
    ant.send_json(json!({"command":"join","streamId":"grafana","mode":"both"}))
        .await;
    ant.recv_text().await;
    let path = temp_dir("grafana").join("switchboard.toml");
    std::fs::write(&path, TEST_CONFIG).unwrap();
    gw.running().reload_file(&path).unwrap();

    let (status, metrics) = http_get(gw.main, "/metrics").await;
    assert_eq!(status, 200);
    let exported: BTreeSet<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect();
    let missing: Vec<&&str> = names.iter().filter(|n| !exported.contains(**n)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics /metrics does not export: {missing:?}\n\nexported: {exported:?}"
    );
    gw.stop().await;
}
