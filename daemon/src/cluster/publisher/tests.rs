//! How a round's items are cut into steps: through Redis alone one pipeline; with a node's
//! frames over its direct link, a frame for it queued after a membership script waits for the
//! script's reply.
#![allow(clippy::unwrap_used)]

use super::*;

fn cluster() -> Cluster {
    crate::cluster::unreached()
}

/// A membership script (a member's record removed).
fn script() -> Entry {
    Entry {
        since: Instant::now(),
        seq: 0,
        unheard: false,
        extra: false,
        item: Outgoing::Unclaim {
            room: "r".to_owned(),
            session: switchboard_plugin_api::SessionId(7),
        },
    }
}

/// Each step's bundles (node, frame indices) over links and through Redis, and the items
/// whose scripts its Redis pipeline runs.
type Shape = Vec<(
    Vec<(String, Vec<usize>)>,
    Vec<(String, Vec<usize>)>,
    Vec<usize>,
)>;

fn shape(steps: &[Step<'_>]) -> Shape {
    let bundles = |pipe: &Pipe<'_>| {
        pipe.bundles
            .iter()
            .map(|b| (b.node.to_string(), b.frames.clone()))
            .collect::<Vec<_>>()
    };
    steps
        .iter()
        .map(|s| {
            let direct = s.direct.iter().flat_map(|(_, p)| bundles(p)).collect();
            (direct, bundles(&s.redis), s.scripts.clone())
        })
        .collect()
}

#[test]
fn a_frame_over_a_link_queued_after_a_script_is_sent_once_the_script_ran() {
    let cluster = cluster();
    let (x, y): (Arc<str>, Arc<str>) = (Arc::from("node-x@1"), Arc::from("node-y@1"));
    let chunk = vec![
        Some(Entry::numbered(Arc::clone(&x), 1)),
        Some(script()),
        Some(Entry::numbered(Arc::clone(&y), 1)),
        Some(Entry::numbered(Arc::clone(&x), 2)),
    ];
    let mut arena = BytesMut::new();
    let b = |node: &str, frames: &[usize]| (node.to_owned(), frames.to_vec());

    // Through Redis alone: one pipeline, which Redis runs in order.
    let steps = pipeline(&cluster, &chunk, &mut arena, &|_| false);
    let through_redis = vec![
        b("node-x@1", &[0]),
        b("node-y@1", &[2]),
        b("node-x@1", &[3]),
    ];
    assert_eq!(shape(&steps), vec![(vec![], through_redis, vec![1])]);

    // x over its link: its first frame goes before the script runs, its second in a step of
    // its own, sent after the script's reply; y's frame after the script stays in the
    // script's pipeline (Redis runs it after the script).
    let steps = pipeline(&cluster, &chunk, &mut arena, &|n| *n == x);
    assert_eq!(
        shape(&steps),
        vec![
            (
                vec![b("node-x@1", &[0])],
                vec![b("node-y@1", &[2])],
                vec![1]
            ),
            (vec![b("node-x@1", &[3])], vec![], vec![]),
        ]
    );

    // Both over links: no Redis bundle at all, the script alone in the first step's pipeline.
    let steps = pipeline(&cluster, &chunk, &mut arena, &|_| true);
    assert_eq!(
        shape(&steps),
        vec![
            (vec![b("node-x@1", &[0])], vec![], vec![1]),
            (
                vec![b("node-y@1", &[2]), b("node-x@1", &[3])],
                vec![],
                vec![]
            ),
        ]
    );
}
