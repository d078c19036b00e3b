use super::*;

#[test]
fn embedded_default_is_valid() {
    let config = GatewayConfig::from_toml(DEFAULT_CONFIG).expect("default config");
    assert_eq!(config.listeners.len(), 2);
    assert_eq!(config.listeners[0].bind.port(), 5080);
    assert_eq!(config.listeners[1].bind.port(), 7000);
}

#[test]
fn unknown_keys_are_errors_with_line_and_column() {
    let err = GatewayConfig::parse("[limits]\nmax_frame_byte = 10\n").expect_err("typo");
    let text = err.to_string();
    assert!(text.contains("line 2"), "{text}");
    assert!(text.contains("max_frame_byte"), "{text}");
}

#[test]
fn validation_reports_every_problem() {
    let text = r#"
[[listener]]
bind = "127.0.0.1:1"
dialects = []
[[listener]]
bind = "127.0.0.1:1"
[limits]
max_frame_bytes = 10
[[plugin]]
type = "no-such-plugin"
[[plugin]]
type = "room-router"
settings = { max_peers = 1 }
"#;
    let Err(LoadConfigError::Invalid(errors)) = GatewayConfig::from_toml(text) else {
        panic!("expected validation errors");
    };
    let all = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    for needle in [
        "listener[0].dialects",
        "listener[1].bind",
        "max_frame_bytes",
        "no-such-plugin",
        "max_peers",
    ] {
        assert!(all.contains(needle), "missing {needle} in:\n{all}");
    }
    assert_eq!(errors.len(), 5, "{all}");
}

#[test]
fn cluster_example_is_valid_and_cluster_is_optional() {
    let text = include_str!("../../../config/cluster.toml");
    let config = GatewayConfig::from_toml(text).expect("config/cluster.toml");
    let cluster = config.cluster.expect("[cluster]");
    assert_eq!(cluster.node_name(), "node-a");
    assert_eq!(cluster.node_ttl_ms, 5000);
    assert!(
        GatewayConfig::from_toml(DEFAULT_CONFIG)
            .expect("default")
            .cluster
            .is_none(),
        "the default runs alone"
    );
}

#[test]
fn cluster_problems_are_all_reported() {
    let text = r#"
[[listener]]
bind = "127.0.0.1:0"
dialects = ["raw"]
[cluster]
redis_url = "http://example"
node_id = "a|b"
key_prefix = ""
heartbeat_interval_ms = 10
node_ttl_ms = 15
publish_queue_len = 0
replay_window_ms = 5
[[plugin]]
type = "room-router"
"#;
    let Err(LoadConfigError::Invalid(errors)) = GatewayConfig::from_toml(text) else {
        panic!("expected validation errors");
    };
    let all = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    for key in [
        "cluster.redis_url",
        "cluster.node_id",
        "cluster.key_prefix",
        "cluster.heartbeat_interval_ms",
        "cluster.node_ttl_ms",
        "cluster.publish_queue_len",
        "cluster.replay_window_ms",
    ] {
        assert!(all.contains(key), "missing {key} in:\n{all}");
    }
    let typo = text.replace("node_ttl_ms = 15", "node_tll_ms = 15");
    assert!(
        GatewayConfig::parse(&typo).is_err(),
        "unknown keys are errors"
    );
}

#[test]
fn the_engine_io_3_post_cap_defaults_to_16_mib_and_is_at_least_1024() {
    assert_eq!(LimitsConfig::default().engineio3_max_post_bytes, 16 << 20);
    let Err(LoadConfigError::Invalid(errors)) =
        GatewayConfig::from_toml("[limits]\nengineio3_max_post_bytes = 1023\n")
    else {
        panic!("expected validation errors");
    };
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("limits.engineio3_max_post_bytes")),
        "{errors:?}"
    );
}

#[test]
fn the_session_queue_byte_bound_defaults_to_1_mib_and_is_at_least_1024() {
    assert_eq!(LimitsConfig::default().session_queue_bytes, 1 << 20);
    let Err(LoadConfigError::Invalid(errors)) =
        GatewayConfig::from_toml("[limits]\nsession_queue_bytes = 1023\n")
    else {
        panic!("expected validation errors");
    };
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("limits.session_queue_bytes")),
        "{errors:?}"
    );
    let config = GatewayConfig::parse("[limits]\nsession_queue_bytes = 4096\n").expect("parses");
    assert_eq!(config.limits.session_queue_bytes, 4096);
}
