//! Redis as operators run it, with real servers started here: `rediss://` (Debian's
//! `redis-server --tls-port`, certificates from a test CA made with rcgen), an ACL user whose
//! password comes from the environment or a file (a wrong one stops the gateway at start-up
//! with a clear error), and Redis Sentinel (`redis-sentinel`) failing a primary over to its
//! replica under two gateway nodes with an Ant call across them, every frame counted.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use switchboard_tests::cluster::{
    self, Node, RedisServer, ant_pair, expect_candidates, node_config, send_candidates,
};
use switchboard_tests::pki::test_pki;
use switchboard_tests::{WsClient, http_request, switchboard_bin, temp_dir};
use tokio::process::{Child, Command};

// === helpers ===

/// A test node's config with `cluster` (the Redis lines of `[cluster]`) in place of the rig's
/// `redis_url`.
fn config_with(cluster: &str, name: &str) -> String {
    node_config("UNUSED", name).replace("redis_url = \"UNUSED\"\n", &format!("{cluster}\n"))
}

/// Starts a node on `cluster` lines and waits until it reached Redis.
async fn node(cluster: &str, name: &str, env: &[(&str, &str)]) -> Node {
    let node = Node::spawn_env(&config_with(cluster, name), name, env).await;
    node.wait_health("cluster: ok", Duration::from_secs(15))
        .await;
    node
}

/// Runs the real binary on `cluster` lines, expecting it to refuse to start: returns its
/// standard error once it has exited (within 15 s), with a failure status.
async fn refused_start(cluster: &str, name: &str, env: &[(&str, &str)]) -> String {
    let dir = temp_dir(&format!("refused-{name}"));
    let path = dir.join("switchboard.toml");
    std::fs::write(&path, config_with(cluster, name)).unwrap();
    let child = Command::new(switchboard_bin())
        .args(["--config", path.to_str().unwrap()])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
        .await
        .expect("the gateway stops within 15 s when Redis refuses it")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "it must not start: {stderr}");
    assert!(
        !stderr.contains("\"Listening.\""),
        "nothing may listen: {stderr}"
    );
    stderr
}

/// `n` candidates each way, every one received once, in order, and nothing else.
async fn both_ways(pa: &mut WsClient, pb: &mut WsClient, room: &str, from: usize, n: usize) {
    cluster::both_ways(pa, pb, room, from, n).await;
    pa.expect_silence(200).await;
    pb.expect_silence(200).await;
}

/// A REST conference room made on `a` is read on `b`: the conference catalog's own (blocking)
/// connection reaches the same Redis, with the same TLS and credentials, and after a failover
/// the primary the node's link found through the sentinels.
async fn room_shared(a: &Node, b: &Node, room: &str) {
    let (status, made) = http_request(
        a.main,
        "POST",
        "/LiveApp/rest/v2/broadcasts/conference-rooms",
        Some(&json!({"roomId":room}).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{made}");
    let (status, seen) = http_request(
        b.main,
        "GET",
        &format!("/LiveApp/rest/v2/broadcasts/conference-rooms/{room}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{seen}");
    assert!(seen.contains(&format!("\"roomId\":\"{room}\"")), "{seen}");
}

// === TLS ===

/// `redis-server` serving TLS only (no plain port), with the certificate of [`test_pki`] (its `server.pem` and `server.key`).
async fn tls_redis(pki: &Path) -> RedisServer {
    let file = |name: &str| pki.join(name).to_str().unwrap().to_owned();
    RedisServer::start_with(vec![
        "--port".into(),
        "0".into(),
        "--tls-port".into(),
        "{port}".into(),
        "--tls-cert-file".into(),
        file("server.pem"),
        "--tls-key-file".into(),
        file("server.key"),
        "--tls-ca-cert-file".into(),
        file("ca.pem"),
        "--tls-auth-clients".into(),
        "no".into(),
    ])
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_private_ca_carries_a_call_across_nodes() {
    let pki = temp_dir("redis-pki");
    let ca = test_pki(&pki, "Switchboard test Redis CA").ca_file;
    let redis = tls_redis(&pki).await;
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let cluster = format!(
        "redis_url = \"{url}\"\nredis_ca_file = \"{}\"",
        ca.display()
    );
    let a = node(&cluster, "tls-a", &[]).await;
    let b = node(&cluster, "tls-b", &[]).await;
    let room = "ops-tls";
    let (mut pa, mut pb) = ant_pair(&a, &b, room).await;
    both_ways(&mut pa, &mut pb, room, 0, 50).await;
    room_shared(&a, &b, "ops-tls-rest").await;

    // The server really is TLS only: plain Redis is refused on that port (the node does not
    // start it) and so is TLS without the test CA (the system's roots do not know it).
    let plain = format!("redis_url = \"redis://127.0.0.1:{}\"", redis.port);
    let mut plain_node = Node::spawn(&config_with(&plain, "plain"), "plain").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        plain_node.health().await.contains("cluster: degraded"),
        "plain text to a TLS port never reaches Redis"
    );
    plain_node.kill().await;
    let stderr = refused_start(&format!("redis_url = \"{url}\""), "no-ca", &[]).await;
    assert!(
        stderr.contains("refused this node") && stderr.contains("certificate"),
        "a clear start-up error about the certificate: {stderr}"
    );
    // The call went on meanwhile.
    both_ways(&mut pa, &mut pb, room, 50, 10).await;
}

// === ACL user and password ===

/// `redis-server` whose default user is off and whose only user is `switchboard` with
/// password `password`.
async fn acl_redis(password: &str) -> RedisServer {
    RedisServer::start_with(
        [
            "--user",
            "default",
            "off",
            "--user",
            "switchboard",
            "on",
            &format!(">{password}"),
            "~*",
            "&*",
            "+@all",
        ]
        .map(str::to_owned)
        .to_vec(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_with_its_password_from_env_or_file_joins_and_a_wrong_one_is_refused() {
    let password = "s3cret-acl-password-7";
    let redis = acl_redis(password).await;
    let url = redis.url();
    // Node a reads the password from the environment, node b from a file.
    let secret_dir = temp_dir("redis-secret");
    let secret_file = secret_dir.join("redis-password");
    std::fs::write(&secret_file, format!("{password}\n")).unwrap();
    let a = node(
        &format!(
            "redis_url = \"{url}\"\nredis_username = \"switchboard\"\n\
             redis_password = {{ env = \"SB_TEST_REDIS_PASSWORD\" }}"
        ),
        "acl-a",
        &[("SB_TEST_REDIS_PASSWORD", password)],
    )
    .await;
    let b = node(
        &format!(
            "redis_url = \"{url}\"\nredis_username = \"switchboard\"\n\
             redis_password = {{ file = \"{}\" }}",
            secret_file.display()
        ),
        "acl-b",
        &[],
    )
    .await;
    let room = "ops-acl";
    let (mut pa, mut pb) = ant_pair(&a, &b, room).await;
    both_ways(&mut pa, &mut pb, room, 0, 50).await;
    room_shared(&a, &b, "ops-acl-rest").await;

    // A wrong password, and no credentials at all: the gateway does not start, and says why.
    let wrong = refused_start(
        &format!(
            "redis_url = \"{url}\"\nredis_username = \"switchboard\"\n\
             redis_password = {{ env = \"SB_TEST_REDIS_PASSWORD\" }}"
        ),
        "acl-wrong",
        &[("SB_TEST_REDIS_PASSWORD", "not-the-password")],
    )
    .await;
    assert!(
        wrong.contains("refused this node")
            && wrong.contains("redis_password")
            && wrong.contains("authentication failed"),
        "a clear start-up error: {wrong}"
    );
    assert!(
        !wrong.contains("not-the-password"),
        "the password is never logged: {wrong}"
    );
    let none = refused_start(&format!("redis_url = \"{url}\""), "acl-none", &[]).await;
    assert!(none.contains("refused this node"), "{none}");
    both_ways(&mut pa, &mut pb, room, 50, 10).await;
}

// === Sentinel ===

/// A `redis-sentinel` on a free port watching `master` at `primary_port`, quick to fail over.
struct Sentinel {
    port: u16,
    _child: Child,
}

impl Sentinel {
    async fn start(primary_port: u16) -> Self {
        let port = switchboard_tests::cluster::free_port();
        let dir = temp_dir("sentinel");
        let conf = dir.join("sentinel.conf");
        // Sentinel rewrites its config file as it learns; it must be writable.
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor mymaster 127.0.0.1 {primary_port} 1\n\
                 sentinel down-after-milliseconds mymaster 400\n\
                 sentinel failover-timeout mymaster 2000\n",
                dir.display()
            ),
        )
        .unwrap();
        let child = Command::new("redis-sentinel")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-sentinel ({e}): run scripts/test.sh"));
        let sentinel = Self {
            port,
            _child: child,
        };
        sentinel
            .wait_for(&["SENTINEL", "replicas", "mymaster"], "slave")
            .await;
        sentinel
    }

    async fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .await
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls `args` until the answer contains `needle` (20 s at most).
    async fn wait_for(&self, args: &[&str], needle: &str) -> String {
        for _ in 0..400 {
            let answer = self.cli(args).await;
            if answer.contains(needle) {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("sentinel never answered {args:?} with `{needle}`");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_fails_the_primary_over_and_the_call_across_nodes_goes_on() {
    failover(true).await;
}

/// The replica Sentinel promotes never received the primary's data (its full sync was still
/// waiting): the nodes find Redis empty on the new primary, list their members again, and the
/// call goes on all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_fails_over_to_a_replica_that_never_synced_and_the_call_goes_on() {
    failover(false).await;
}

/// A primary and a replica under one sentinel, two nodes finding the primary through it, an
/// Ant call across them; the primary is SIGKILLed mid-call. `synced`: the replica holds the
/// primary's data when it dies; else the primary's full sync waits a minute, so the replica
/// is promoted empty.
async fn failover(synced: bool) {
    let delay = if synced { "0" } else { "60" };
    let mut primary =
        RedisServer::start_with(vec!["--repl-diskless-sync-delay".into(), delay.into()]).await;
    let replica = RedisServer::start_with(vec![
        "--replicaof".into(),
        "127.0.0.1".into(),
        primary.port.to_string(),
    ])
    .await;
    let link = if synced {
        "master_link_status:up"
    } else {
        "master_sync_in_progress:1"
    };
    for _ in 0..200 {
        if replica.cli(&["INFO", "replication"]).await.contains(link) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let sentinel = Sentinel::start(primary.port).await;
    // The first sentinel listed is not running: the nodes ask the next.
    let dead = switchboard_tests::cluster::free_port();
    // Sentinel takes several seconds to promote a replica that never synced (about 7 s here):
    // frames wait that long, within a replay window set above it.
    let cluster = format!(
        "sentinel = {{ master = \"mymaster\", nodes = [\"127.0.0.1:{dead}\", \"127.0.0.1:{}\"] }}\n\
         replay_window_ms = 30000",
        sentinel.port
    );
    let a = node(&cluster, "sentinel-a", &[]).await;
    let b = node(&cluster, "sentinel-b", &[]).await;
    let room = "ops-sentinel";
    let (mut pa, mut pb) = ant_pair(&a, &b, room).await;
    both_ways(&mut pa, &mut pb, room, 0, 20).await;
    // The nodes write to the primary: their heartbeats are there.
    let keys = primary.cli(&["KEYS", "switchboard:alive:*"]).await;
    assert!(
        keys.contains("sentinel-a") && keys.contains("sentinel-b"),
        "{keys}"
    );

    // Until the primary dies the replica holds its data, or none of it.
    // Replication is asynchronous: a synced replica gets the room's members a moment after
    // the primary does, so it is asked until it has them (bounded).
    let expected = if synced { "2" } else { "0" };
    let mut members = String::new();
    for _ in 0..80 {
        members = replica
            .cli(&["LLEN", "switchboard:room:ops-sentinel"])
            .await;
        if members.trim() == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(members.trim(), expected);
    primary.kill().await;
    // Frames sent while the primary is gone are held, then delivered once the nodes follow
    // the sentinel to the promoted replica.
    send_candidates(&mut pa, room, 20, 10).await;
    send_candidates(&mut pb, room, 20, 10).await;
    sentinel
        .wait_for(
            &["SENTINEL", "get-master-addr-by-name", "mymaster"],
            &replica.port.to_string(),
        )
        .await;
    a.wait_health("cluster: ok", Duration::from_secs(15)).await;
    b.wait_health("cluster: ok", Duration::from_secs(15)).await;
    expect_candidates(&mut pb, room, 20, 10).await;
    expect_candidates(&mut pa, room, 20, 10).await;
    both_ways(&mut pa, &mut pb, room, 30, 20).await;
    // The nodes now live on the new primary, and it is one: both subscribed there.
    assert!(replica.cli(&["ROLE"]).await.starts_with("master"));
    let channels = replica.cli(&["PUBSUB", "CHANNELS", "switchboard:*"]).await;
    assert!(
        channels.contains("sentinel-a") && channels.contains("sentinel-b"),
        "{channels}"
    );
    let keys = replica.cli(&["KEYS", "switchboard:alive:*"]).await;
    assert!(
        keys.contains("sentinel-a") && keys.contains("sentinel-b"),
        "{keys}"
    );
    // The conference catalog follows the sentinel too.
    room_shared(&b, &a, "ops-sentinel-rest").await;
    assert!(
        replica
            .cli(&["HKEYS", "switchboard:conference:rooms"])
            .await
            .contains("ops-sentinel-rest")
    );
    // A new call across the nodes starts on the new primary.
    let (mut qa, mut qb) = ant_pair(&a, &b, "ops-sentinel-2").await;
    both_ways(&mut qa, &mut qb, "ops-sentinel-2", 0, 10).await;
}
