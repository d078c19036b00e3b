//! The dialer of direct links: links this node to every node that announces an address and
//! has no link from it yet, and hands each link to the publisher.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::BytesMut;
use redis_protocol::resp2::types::BytesFrame;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{debug, info};

use super::{Direct, lock};
use crate::cluster::Cluster;
use crate::cluster::resp::{self, RespConn};

/// The most the answer to a handshake may take.
const ANSWER_BYTES: usize = 1024;

/// Dials until the cluster stops: when woken (new addresses, a link lost) and every heartbeat
/// interval, each node not linked, at most once per interval each.
pub async fn run(cluster: Arc<Cluster>) {
    let Some(direct) = cluster.direct() else {
        return;
    };
    let interval = std::time::Duration::from_millis(cluster.config.heartbeat_interval_ms);
    let mut tried: HashMap<Arc<str>, Instant> = HashMap::new();
    loop {
        tokio::select! {
            () = cluster.stop.cancelled() => return,
            () = direct.wake.notified() => {}
            () = tokio::time::sleep(interval) => {}
        }
        let peers = lock(&direct.peers).clone();
        tried.retain(|node, _| peers.contains_key(node));
        for (node, addr) in peers {
            if lock(&direct.linked).contains(&node)
                || tried.get(&node).is_some_and(|at| at.elapsed() < interval)
            {
                continue;
            }
            tried.insert(Arc::clone(&node), Instant::now());
            let dialed = tokio::time::timeout(
                cluster.command_timeout(),
                dial(&cluster, direct, &node, &addr),
            )
            .await
            .unwrap_or_else(|_| Err("no answer in time".to_owned()));
            match dialed {
                Ok(conn) => {
                    info!(node = %node, addr, "Cluster: direct link to a node.");
                    lock(&direct.linked).insert(Arc::clone(&node));
                    lock(&direct.dialed).push((node, conn));
                    direct.handed.notify_one();
                }
                // Tried again next interval; its frames go through Redis meanwhile.
                Err(why) => debug!(node = %node, addr, why, "Cluster: no direct link to a node."),
            }
        }
    }
}

/// Connects to `node` at `addr` and proves the link secret.
async fn dial(
    cluster: &Cluster,
    direct: &Direct,
    node: &str,
    addr: &str,
) -> Result<RespConn, String> {
    let proof = direct
        .proof(&cluster.node, node)
        .ok_or("no link secret from Redis yet")?;
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    // Bundles are written whole; nothing is gained by waiting for more.
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut conn = RespConn::over(stream, ANSWER_BYTES);
    let mut hello = BytesMut::new();
    resp::command(
        &mut hello,
        &[b"NODE", &proof, cluster.node.as_bytes(), node.as_bytes()],
    );
    conn.write(vec![hello.freeze().into()])
        .await
        .map_err(|e| e.to_string())?;
    match conn.read_small_frame(ANSWER_BYTES, b"+-").await {
        Ok(Some(BytesFrame::SimpleString(ok))) if &ok[..] == b"OK" => Ok(conn),
        Ok(Some(BytesFrame::Error(e))) => Err(format!("refused: {e}")),
        Ok(_) => Err("no answer to the handshake".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}
