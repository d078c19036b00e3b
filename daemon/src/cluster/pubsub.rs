//! The node's subscription to its channel, on its own RESP connection ([`super::resp`]): each
//! pushed message's payload (a bundle) is a slice of the read buffer, handed on without a copy.

use std::path::Path;

use bytes::Bytes;
use redis::RedisResult;
use redis_protocol::resp2::types::BytesFrame;
use tokio::time::Instant;

use super::resp::{RespConn, command, protocol, server_error};

/// A connection subscribed to one channel.
#[derive(Debug)]
pub struct Subscription {
    conn: RespConn,
    channel: String,
}

/// What the subscription yielded.
#[derive(Debug)]
pub enum Pushed {
    /// A message published to the channel: its payload.
    Message(Bytes),
    /// Redis confirmed the subscription.
    Subscribed,
    /// Redis confirmed the end of the subscription: it sends nothing more.
    Unsubscribed,
}

impl Subscription {
    /// Connects to the server `client` names and subscribes to `channel`, once Redis confirmed.
    pub async fn open(
        client: &redis::Client,
        ca_file: Option<&Path>,
        channel: String,
    ) -> RedisResult<Self> {
        let mut conn = RespConn::connect(client, ca_file).await?;
        let mut out = bytes::BytesMut::new();
        command(&mut out, &[b"SUBSCRIBE", channel.as_bytes()]);
        conn.write(vec![out.freeze().into()]).await?;
        let mut sub = Subscription { conn, channel };
        match sub.next().await? {
            Some(Pushed::Subscribed) => Ok(sub),
            _ => Err(protocol("no confirmation of the subscription")),
        }
    }

    /// The next message or confirmation; `None` once Redis closed the connection. Cancel safe.
    pub async fn next(&mut self) -> RedisResult<Option<Pushed>> {
        loop {
            let Some(frame) = self.conn.read_frame().await? else {
                return Ok(None);
            };
            if let Some(pushed) = classify(frame)? {
                return Ok(Some(pushed));
            }
        }
    }

    /// Asks Redis to end the subscription (its answer comes through [`Self::next`]).
    pub async fn unsubscribe(&mut self) -> RedisResult<()> {
        let mut out = bytes::BytesMut::new();
        command(&mut out, &[b"UNSUBSCRIBE", self.channel.as_bytes()]);
        self.conn.write(vec![out.freeze().into()]).await
    }

    /// Reads what Redis still sends, handing each message to `take`, until it confirms the
    /// end of the subscription, the connection ends or fails, or `deadline` passes.
    pub async fn drain(&mut self, deadline: Instant, mut take: impl FnMut(&Bytes)) {
        loop {
            match tokio::time::timeout_at(deadline, self.next()).await {
                Ok(Ok(Some(Pushed::Message(payload)))) => take(&payload),
                Ok(Ok(Some(Pushed::Subscribed))) => {}
                _ => return,
            }
        }
    }
}

/// What a frame on a subscribed connection says; `None` for what concerns no one here.
fn classify(frame: BytesFrame) -> RedisResult<Option<Pushed>> {
    let BytesFrame::Array(mut parts) = frame else {
        if let BytesFrame::Error(e) = frame {
            return Err(server_error(&e));
        }
        return Ok(None);
    };
    if parts.len() < 3 {
        return Ok(None);
    }
    let kind = match &parts[0] {
        BytesFrame::BulkString(k) | BytesFrame::SimpleString(k) => k.clone(),
        _ => return Ok(None),
    };
    Ok(match &kind[..] {
        b"message" => match parts.swap_remove(2) {
            BytesFrame::BulkString(payload) => Some(Pushed::Message(payload)),
            _ => return Err(protocol("a pushed message without a payload")),
        },
        b"subscribe" => Some(Pushed::Subscribed),
        b"unsubscribe" => Some(Pushed::Unsubscribed),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    //! The data path's connections against a real `redis-server` (started here, on loopback).

    use std::time::Duration;

    use super::*;
    use crate::cluster::resp::Pipeline;

    /// A `redis-server` on a free loopback port, stopped when dropped.
    struct Redis {
        child: std::process::Child,
        port: u16,
    }

    impl Drop for Redis {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    async fn redis() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Owned by the guard at once: it is killed and waited for on every path.
        let redis = Redis {
            child: std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("redis-server is installed"),
            port,
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return redis;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not listen");
    }

    async fn message(sub: &mut Subscription) -> Bytes {
        match tokio::time::timeout(Duration::from_secs(10), sub.next()).await {
            Ok(Ok(Some(Pushed::Message(payload)))) => payload,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    fn payload(n: usize, seed: u8) -> Bytes {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>()
            .into()
    }

    #[tokio::test]
    async fn publishes_cross_byte_identical_with_their_counts_and_a_drain_ends_at_the_answer() {
        let redis = redis().await;
        let client = redis::Client::open(format!("redis://127.0.0.1:{}", redis.port)).unwrap();
        let mut sub = Subscription::open(&client, None, "t:node".into())
            .await
            .unwrap();
        let mut conn = RespConn::connect(&client, None).await.unwrap();

        // Larger than one read (and holding CR LF bytes), then small ones; one to a channel
        // nobody listens on; a redis-rs command in between.
        let big = payload(300_000, 7);
        let small = Bytes::from_static(b"a\r\nb");
        let mut pipe = Pipeline::default();
        pipe.publish(b"t:node", big.clone());
        pipe.publish(b"t:nobody", small.clone());
        pipe.commands(redis::pipe().cmd("SET").arg("k").arg("v").ignore());
        pipe.publish(b"t:node", small.clone());
        assert_eq!(pipe.exec(&mut conn).await.unwrap(), vec![1, 0, 1]);
        assert_eq!(message(&mut sub).await, big);
        assert_eq!(message(&mut sub).await, small);

        // An error reply fails the pipeline, whose later commands still ran; every reply is
        // read, so the next pipeline is in step.
        let mut pipe = Pipeline::default();
        pipe.commands(redis::pipe().cmd("INCR").arg("k").ignore());
        pipe.publish(b"t:node", payload(10, 1));
        assert!(pipe.exec(&mut conn).await.is_err());
        assert_eq!(message(&mut sub).await, payload(10, 1));
        let mut pipe = Pipeline::default();
        pipe.publish(b"t:node", payload(20, 2));
        pipe.publish(b"t:node", payload(70_000, 3));
        assert_eq!(pipe.exec(&mut conn).await.unwrap(), vec![1, 1]);

        // Unsubscribed, the drain hands over what Redis sent before its answer, then stops.
        sub.unsubscribe().await.unwrap();
        let mut drained = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        sub.drain(deadline, |p| drained.push(p.clone())).await;
        assert_eq!(drained, vec![payload(20, 2), payload(70_000, 3)]);
        let mut pipe = Pipeline::default();
        pipe.publish(b"t:node", small);
        assert_eq!(pipe.exec(&mut conn).await.unwrap(), vec![0]);
    }

    #[tokio::test]
    async fn a_subscription_closed_by_redis_is_read_to_its_end() {
        let redis = redis().await;
        let client = redis::Client::open(format!("redis://127.0.0.1:{}", redis.port)).unwrap();
        let mut sub = Subscription::open(&client, None, "t:end".into())
            .await
            .unwrap();
        let mut conn = RespConn::connect(&client, None).await.unwrap();
        let mut pipe = Pipeline::default();
        pipe.publish(b"t:end", payload(100_000, 9));
        pipe.commands(
            redis::pipe()
                .cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("pubsub"),
        );
        assert_eq!(pipe.exec(&mut conn).await.unwrap(), vec![1]);
        let mut drained = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        sub.drain(deadline, |p| drained.push(p.clone())).await;
        assert_eq!(drained, vec![payload(100_000, 9)]);
        assert!(matches!(sub.next().await, Ok(None) | Err(_)));
    }
}
