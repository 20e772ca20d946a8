use chrono::TimeZone;

use super::*;

fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, day, hour, minute, 0).unwrap()
}

fn schedule() -> Schedule {
    Schedule { first_retry: Duration::seconds(10), max_retry: Duration::seconds(60), lease: Duration::seconds(30) }
}

fn month(text: &str) -> Month {
    Month::parse(text).unwrap()
}

fn delivery(now: DateTime<Utc>) -> Delivery {
    Delivery::new(TenantId::parse("acme").unwrap(), month("2026-11"), "{}".into(), now)
}

#[test]
fn a_new_bill_is_sent_at_once_with_a_key_naming_tenant_and_month() {
    let now = at(1, 0, 5);
    let delivery = delivery(now);
    assert_eq!(delivery.idempotency_key, "bill-acme-2026-11");
    assert_eq!(delivery.step(now), Step::Send);
}

#[test]
fn a_claimed_delivery_waits_for_its_lease() {
    let now = at(1, 0, 5);
    let mut delivery = delivery(now);
    delivery.claim(now, &schedule());
    assert_eq!(delivery.step(now), Step::WaitUntil(now + Duration::seconds(30)));
    assert_eq!(delivery.step(now + Duration::seconds(30)), Step::Send, "a node that died mid-attempt is taken over");
}

#[test]
fn failures_back_off_doubling_up_to_the_cap_and_an_acknowledgement_ends_it() {
    let mut now = at(1, 0, 5);
    let mut delivery = delivery(now);
    let mut waits = Vec::new();
    for answer in [Answer::Refused(500), Answer::Failed("connection refused".into()), Answer::Refused(429)] {
        delivery.claim(now, &schedule());
        let attempt = delivery.answered(now, answer, &schedule());
        let retry_at = attempt.retry_at.expect("a retry");
        waits.push((retry_at - now).num_seconds());
        assert_eq!(delivery.step(now), Step::WaitUntil(retry_at));
        now = retry_at;
    }
    assert_eq!(waits, [10, 20, 40]);
    assert_eq!(delivery.last_error.as_deref(), Some("HTTP 429"));
    delivery.attempts = 10;
    let attempt = delivery.answered(now, Answer::Refused(503), &schedule());
    assert_eq!(attempt.retry_at, Some(now + Duration::seconds(60)), "capped");
    now += Duration::seconds(60);
    let attempt = delivery.answered(now, Answer::Acknowledged(204), &schedule());
    assert_eq!((attempt.number, attempt.retry_at), (12, None));
    assert_eq!(delivery.step(now + Duration::days(400)), Step::Done);
    assert_eq!(delivery.delivered_at, Some(now));
}

#[test]
fn the_first_close_takes_only_the_last_ended_month() {
    let delay = Duration::minutes(10);
    assert_eq!(months_to_close(None, at(3, 12, 0), delay), [month("2026-11")]);
    // Within the delay after midnight the month before is still the last one closed.
    assert_eq!(months_to_close(None, at(1, 0, 5), delay), [month("2026-10")]);
}

#[test]
fn later_closes_take_every_month_since_the_last_one_once() {
    let delay = Duration::minutes(10);
    let now = at(3, 12, 0);
    assert!(months_to_close(Some(month("2026-11")), now, delay).is_empty());
    assert_eq!(months_to_close(Some(month("2026-09")), now, delay), [month("2026-10"), month("2026-11")]);
    let new_year = Utc.with_ymd_and_hms(2027, 1, 1, 0, 20, 0).unwrap();
    assert_eq!(months_to_close(Some(month("2026-11")), new_year, delay), [month("2026-12")]);
}
