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
