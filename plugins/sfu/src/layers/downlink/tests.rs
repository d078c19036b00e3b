use super::*;

fn ms(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

#[test]
fn the_budget_is_the_highest_estimate_of_the_window() {
    let t0 = Instant::now();
    let mut link = Downlink::default();
    assert_eq!(link.budget(t0), None, "nothing known");
    link.on_estimate(1_000_000, true, t0);
    link.on_estimate(400_000, true, ms(t0, 500));
    // A dip does not count until the higher estimate is out of the window.
    assert_eq!(link.budget(ms(t0, 1_000)), Some(1_000_000));
    // At 2.5 s, the estimate in force since 0.5 s (400 k) is all the window has.
    assert_eq!(link.budget(ms(t0, 2_500)), Some(400_000));
    // A probe shows more, briefly: it is the budget for the window after it.
    link.on_estimate(900_000, true, ms(t0, 3_000));
    link.on_estimate(450_000, true, ms(t0, 3_200));
    assert_eq!(link.budget(ms(t0, 4_900)), Some(900_000));
    assert_eq!(link.budget(ms(t0, 5_300)), Some(450_000));
    // str0m cannot probe any more (its value is stale): forgotten.
    link.on_estimate(450_000, false, ms(t0, 5_400));
    assert_eq!(link.budget(ms(t0, 5_500)), None);
}

#[test]
fn without_twcc_loss_steps_the_budget_down_and_a_clean_period_grows_it() {
    let t0 = Instant::now();
    let mut link = Downlink::default();
    let (audio, video) = (Mid::from("0"), Mid::from("1"));
    // Reports without loss and no budget yet: still nothing known.
    link.on_report(audio, 40_000, Some(0.0));
    link.on_report(video, 960_000, Some(0.0));
    assert_eq!(link.budget(t0), None);
    // 30 % lost of the 1 Mbit/s sent: 1 000 000 × (1 − 0.15).
    link.on_report(video, 960_000, Some(0.3));
    assert_eq!(link.budget(t0), Some(850_000));
    // Between 2 % and 10 %: held.
    link.on_report(video, 700_000, Some(0.05));
    assert_eq!(link.budget(t0), Some(850_000));
    // Clean reports: 8 % more each.
    link.on_report(video, 700_000, Some(0.0));
    assert_eq!(link.budget(t0), Some(918_000));
    link.on_report(video, 700_000, None);
    assert_eq!(link.budget(t0), Some(918_000), "no report, no change");
    assert_eq!(link.sent(video), 700_000);
    assert_eq!(link.sent(Mid::from("9")), 0);
    // Nonsense from a peer's report changes nothing and panics nowhere.
    link.on_report(video, 700_000, Some(f32::NAN));
    link.on_report(video, u64::MAX, Some(7.0));
    assert!(link.budget(t0).is_some());
    // A TWCC estimate, once there is one, is preferred.
    link.on_estimate(300_000, true, t0);
    assert_eq!(link.budget(t0), Some(300_000));
}
