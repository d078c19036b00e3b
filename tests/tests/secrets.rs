//! Secrets out of the config file, on the real binary: the admin token from a file and the TURN
//! secret from an environment variable; `check-config` names the key of a missing variable or
//! file; SIGHUP reads the secret file again (a rotated token takes effect, the old one stops).
#![allow(clippy::unwrap_used)]

use switchboard_tests::binary::{BinaryRun, Lines, listening_addr};
use switchboard_tests::{http_with_headers, switchboard_bin, temp_dir};

const CONFIG: &str = r#"
[[listener]]
bind = "127.0.0.1:0"

[log]
format = "json"

[admin]
token = { file = "admin-token" }

[turn]
secret = { env = "SB_SECRETS_TEST_TURN" }
uris = ["turn:turn.example.test:3478"]

[shutdown]
grace_period_secs = 1

[[plugin]]
type = "room-router"
"#;

async fn stats(addr: std::net::SocketAddr, token: &str) -> u16 {
    let auth = format!("Bearer {token}");
    http_with_headers(addr, "GET", "/api/stats", &[("Authorization", &auth)])
        .await
        .0
}

#[tokio::test]
async fn check_config_names_the_key_of_a_missing_secret() {
    let dir = temp_dir("secrets-check");
    let path = dir.join("switchboard.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let output = tokio::process::Command::new(switchboard_bin())
        .args(["check-config", path.to_str().unwrap()])
        .env_remove("SB_SECRETS_TEST_TURN")
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(64), "{text}");
    assert!(
        text.contains("admin.token: cannot read secret file") && text.contains("admin-token"),
        "{text}"
    );
    assert!(
        text.contains("turn.secret: environment variable `SB_SECRETS_TEST_TURN` is not set"),
        "{text}"
    );

    std::fs::write(dir.join("admin-token"), "token-from-a-file-0123456789\n").unwrap();
    let output = tokio::process::Command::new(switchboard_bin())
        .args(["check-config", path.to_str().unwrap()])
        .env("SB_SECRETS_TEST_TURN", "turn-secret-from-env")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn the_binary_uses_secrets_and_sighup_rereads_them() {
    let dir = temp_dir("secrets-run");
    let path = dir.join("switchboard.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let first = "first-token-from-a-file-0123456789";
    std::fs::write(dir.join("admin-token"), format!("{first}\n")).unwrap();
    let mut run = BinaryRun::start(
        &path,
        &[("SB_SECRETS_TEST_TURN", "turn-secret-from-env")],
        Lines::JsonOnly,
    );
    let addr = listening_addr(&run.wait_for("Listening.").await);
    assert_eq!(stats(addr, first).await, 200, "the token from the file");
    assert_eq!(stats(addr, "admin-token").await, 401);

    // The TURN secret came from the environment: minted credentials verify against it.
    let mut raw = switchboard_tests::WsClient::connect(&format!("ws://{addr}/ws/secrets")).await;
    raw.recv_json().await;
    raw.send_json(serde_json::json!({"type": "switchboard.ice-servers"}))
        .await;
    let ice = raw.recv_json().await;
    let server = &ice["iceServers"][0];
    let username = server["username"].as_str().unwrap();
    let expected = {
        use base64::Engine as _;
        use hmac::{Hmac, KeyInit as _, Mac as _};
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"turn-secret-from-env").unwrap();
        mac.update(username.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    };
    assert_eq!(server["credential"], expected.as_str(), "{ice}");
    raw.close().await;

    // Rotate the token file and reload: the new token works, the old one no longer does.
    let second = "second-token-after-rotation-987654";
    std::fs::write(dir.join("admin-token"), format!("{second}\n")).unwrap();
    assert!(run.signal("-HUP"));
    run.wait_for("Configuration reloaded.").await;
    assert_eq!(stats(addr, second).await, 200, "the rotated token");
    assert_eq!(
        stats(addr, first).await,
        401,
        "the old token after rotation"
    );

    // A reload whose secret file vanished is refused with the key, and the token stays.
    std::fs::remove_file(dir.join("admin-token")).unwrap();
    assert!(run.signal("-HUP"));
    let failed = run.refused_reload().await;
    assert!(failed.contains("admin.token"), "{failed}");
    assert_eq!(stats(addr, second).await, 200, "still the running token");

    assert!(run.signal("-TERM"));
    let status = run.exit_status().await;
    assert!(status.success(), "{status}");
    std::fs::remove_dir_all(dir).unwrap();
}
