use std::path::Path;

use crate::config::{GatewayConfig, LoadConfigError};

const BASE: &str = "[[listener]]\nbind = \"127.0.0.1:0\"\n[[plugin]]\ntype = \"room-router\"\n";

fn dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sb-secrets-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn problems(text: &str, dir: &Path) -> Vec<(String, String)> {
    match GatewayConfig::parse_in(text, dir) {
        Err(LoadConfigError::Invalid(errors)) => errors
            .into_iter()
            .map(|e| (e.location, e.message))
            .collect(),
        other => panic!("expected secret problems, got {other:?}"),
    }
}

#[test]
fn every_secret_reads_from_a_file_or_the_environment() {
    let dir = dir("ok");
    std::fs::write(
        dir.join("admin-token"),
        "admin-token-from-a-file-0123456789\n",
    )
    .expect("write");
    std::fs::write(dir.join("jwt"), "j".repeat(40)).expect("write");
    std::fs::write(dir.join("policy"), "policy-secret\r\n").expect("write");
    // A variable cargo and nextest set for every test process (the crate forbids `unsafe`,
    // so the test cannot set one); tests/tests/secrets.rs sets its own on a real process.
    let from_env = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    let text = format!(
        r#"{BASE}
[admin]
token = {{ file = "admin-token" }}
[turn]
secret = {{ env = "CARGO_MANIFEST_DIR" }}
uris = ["turn:t.example:3478"]
[ice]
uri = "turn:t.example:3478"
credential = {{ env = "CARGO_MANIFEST_DIR" }}
[[antmedia_app]]
name = "LiveApp"
jwt_secret = {{ file = "jwt" }}
hash_secret = "inline-still-works"
[[plugin]]
type = "room-policy"
[plugin.settings]
token = {{ secret = {{ file = "policy" }} }}
"#
    );
    let config = GatewayConfig::parse_in(&text, &dir).expect("parses");
    config
        .validate(&crate::plugins::PluginRegistry::builtin())
        .expect("valid");
    assert_eq!(
        config.admin.token.as_deref(),
        Some("admin-token-from-a-file-0123456789")
    );
    assert_eq!(config.turn.secret.as_deref(), Some(from_env.as_str()));
    assert_eq!(config.ice.credential, from_env);
    let app = &config.antmedia_apps[0];
    assert_eq!(app.jwt_secret.as_deref(), Some("j".repeat(40).as_str()));
    assert_eq!(app.hash_secret.as_deref(), Some("inline-still-works"));
    let settings = &config.plugins[1].settings;
    assert_eq!(settings["token"]["secret"].as_str(), Some("policy-secret"));
    std::fs::remove_dir_all(dir).expect("cleanup");
}

#[test]
fn missing_variables_and_files_are_reported_at_their_keys() {
    let dir = dir("bad");
    let text = format!(
        r#"{BASE}
[admin]
token = {{ env = "SB_TEST_SECRETS_SURELY_UNSET" }}
[turn]
secret = {{ file = "no-such-file" }}
uris = ["turn:t.example:3478"]
[cluster]
redis_url = {{ env = "SB_TEST_SECRETS_SURELY_UNSET", file = "x" }}
[[plugin]]
type = "room-policy"
[plugin.settings]
token = {{ jwt_hs256_secret = {{ path = "x" }} }}
"#
    );
    let found = problems(&text, &dir);
    let at = |key: &str| {
        found
            .iter()
            .find(|(location, _)| location == key)
            .map(|(_, message)| message.clone())
            .unwrap_or_else(|| panic!("no problem at {key}: {found:?}"))
    };
    assert!(at("admin.token").contains("`SB_TEST_SECRETS_SURELY_UNSET` is not set"));
    let file = at("turn.secret");
    assert!(
        file.contains("cannot read secret file") && file.contains("no-such-file"),
        "{file}"
    );
    assert!(at("cluster.redis_url").contains("{ env = \"NAME\" } or { file = \"PATH\" }"));
    assert!(at("plugin[1].settings.token.jwt_hs256_secret").contains("must be a string"));
    assert_eq!(found.len(), 4, "{found:?}");
    std::fs::remove_dir_all(dir).expect("cleanup");
}

#[test]
fn a_secret_table_elsewhere_is_still_a_type_error_with_its_line() {
    let err = GatewayConfig::parse_in(
        &format!("{BASE}[web]\nnode_modules_dir = {{ env = \"X\" }}\n"),
        Path::new(""),
    )
    .expect_err("not a secret key");
    assert!(err.to_string().contains("line"), "{err}");
}
