//! Reading the gateway's `/metrics` (Prometheus text) in tests.

use crate::{TestGateway, http_get};

/// `/metrics` of the gateway's main listener; a status other than 200 fails the test, so that
/// a count read from it is never a silent 0.
pub async fn scrape(gw: &TestGateway) -> String {
    let (status, body) = http_get(gw.main, "/metrics").await;
    assert_eq!(status, 200, "GET /metrics: {body}");
    body
}

/// The value of the first sample named `series` (its name and labels exactly; 0 when absent).
pub fn sample(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// The sum of the samples whose line starts with `prefix` (a series name, perhaps with some of
/// its labels: every label set it covers is added).
pub fn sum(metrics: &str, prefix: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The series of the refusals counted for `dialect` with `reason`.
pub fn errors(dialect: &str, reason: &str) -> String {
    format!(r#"switchboard_errors_total{{dialect="{dialect}",reason="{reason}"}}"#)
}
