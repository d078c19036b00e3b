//! The one ordered publishing queue of a node: a single task drains it in order and sends each
//! batch as one Redis pipeline on one connection, so frames reach every other node in the order
//! they were queued (Redis runs one connection's commands in order, and pub/sub hands a
//! channel's messages to a subscriber in that order).

use std::sync::Arc;

use switchboard_plugin_api::Peer;
use switchboard_plugin_api::protocol::cluster::{
    NODE_PROTOCOL_VERSION, NodeFrame, NodeMessage, RemotePeer,
};
use tokio::sync::mpsc;

use super::{Cluster, OutMessage, Outgoing, health, store};

/// Most items sent in one pipeline.
const BATCH: usize = 512;

/// Runs until the cluster stops: takes what is queued, publishes it.
pub async fn run(cluster: Arc<Cluster>, mut rx: mpsc::Receiver<Outgoing>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let n = tokio::select! {
            () = cluster.stop.cancelled() => return,
            n = rx.recv_many(&mut batch, BATCH) => n,
        };
        if n == 0 {
            return;
        }
        send(&cluster, &batch).await;
        batch.clear();
    }
}

async fn send(cluster: &Cluster, batch: &[Outgoing]) {
    let Some(mut conn) = cluster.conn().filter(|_| cluster.healthy()) else {
        // Redis is gone: what cannot go now is lost (peers re-send offers and candidates when
        // they reconnect); membership is re-registered on recovery.
        health::frames_dropped(batch.len());
        return;
    };
    let mut pipe = redis::pipe();
    let mut frames = 0;
    for item in batch {
        match item {
            Outgoing::Frame { node, msg } => {
                let frame = NodeFrame {
                    v: NODE_PROTOCOL_VERSION,
                    node: cluster.node.to_string(),
                    msg: to_message(msg),
                };
                pipe.cmd("PUBLISH")
                    .arg(cluster.keys.channel(node))
                    .arg(frame.to_json())
                    .ignore();
                frames += 1;
            }
            Outgoing::Commit(commit) => {
                store::commit(&mut pipe, &cluster.keys, &cluster.node, commit);
            }
            Outgoing::Unclaim { room, session } => {
                store::unclaim(&mut pipe, &cluster.keys, &cluster.node, room, *session);
            }
        }
    }
    let sent =
        tokio::time::timeout(cluster.command_timeout(), pipe.query_async::<()>(&mut conn)).await;
    match sent {
        Ok(Ok(())) => health::frame_out(frames),
        Ok(Err(e)) => {
            health::frames_dropped(frames);
            cluster.health.down(&e.to_string());
        }
        Err(_) => {
            health::frames_dropped(frames);
            cluster.health.down("publish timed out");
        }
    }
}

fn remote(peer: &Peer) -> RemotePeer {
    RemotePeer {
        session: peer.session.0,
        dialect: peer.dialect,
        mode: peer.mode,
    }
}

fn to_message(msg: &OutMessage) -> NodeMessage {
    match msg {
        OutMessage::Joined(room, peer) => NodeMessage::Joined {
            room: room.clone(),
            peer: remote(peer),
        },
        OutMessage::Left(room, session) => NodeMessage::Left {
            room: room.clone(),
            session: session.0,
        },
        OutMessage::Relay(to, envelope, with_original) => NodeMessage::Relay {
            to: *to,
            from: remote(&envelope.from),
            event: envelope.event.clone(),
            original: envelope
                .original
                .as_deref()
                .filter(|_| *with_original)
                .map(str::to_owned),
        },
        OutMessage::Deliver(to, event) => NodeMessage::Deliver {
            to: *to,
            event: event.clone(),
        },
    }
}
