//! The throttle's unit tests: its clock moved by hand, attempts looked at
//! one by one.

use super::*;

fn client(address: &str) -> Option<IpAddr> {
    Some(address.parse().unwrap())
}

/// One look, as `attempt` takes before it would wait.
fn look<'a>(
    throttle: &'a Throttle,
    client: Option<IpAddr>,
    name: &str,
) -> Option<Result<Attempt<'a>, Refused>> {
    throttle.try_attempt(throttle.pair(client, name))
}

fn let_through<'a>(throttle: &'a Throttle, client: Option<IpAddr>, name: &str) -> Attempt<'a> {
    match look(throttle, client, name) {
        Some(Ok(attempt)) => attempt,
        other => panic!("not let through: {:?}", other.map(|r| r.err())),
    }
}

fn refused(throttle: &Throttle, client: Option<IpAddr>, name: &str) -> Option<Refused> {
    look(throttle, client, name).expect("decided at once, not waiting").err()
}

fn fail(throttle: &Throttle, client: Option<IpAddr>, name: &str) {
    let_through(throttle, client, name).failed();
}

#[test]
fn a_pair_is_refused_after_its_budget_until_the_window_passes() {
    let throttle = Throttle::new(2, Duration::from_secs(10));
    let alice = client("192.0.2.1");
    fail(&throttle, alice, "alice");
    fail(&throttle, alice, "ALICE");
    assert_eq!(
        refused(&throttle, alice, "Alice"),
        Some(Refused::Throttled(10)),
        "names are case-insensitive"
    );
    assert_eq!(refused(&throttle, client("192.0.2.2"), "alice"), None, "another address may log in");
    throttle.advance_clock(Duration::from_millis(9_500));
    assert_eq!(refused(&throttle, alice, "alice"), Some(Refused::Throttled(1)));
    throttle.advance_clock(Duration::from_millis(500));
    assert_eq!(refused(&throttle, alice, "alice"), None);
    assert_eq!(throttle.sweep(), 0, "the passed window is dropped");
}

#[test]
fn attempts_in_flight_fill_the_budget_but_are_not_failures() {
    let throttle = Throttle::new(3, Duration::from_secs(10));
    let bob = client("192.0.2.3");
    let in_flight: Vec<_> = (0..3).map(|_| let_through(&throttle, bob, "bob")).collect();
    assert!(look(&throttle, bob, "bob").is_none(), "three are being checked: the fourth waits, not 429");
    drop(in_flight);
    assert_eq!(refused(&throttle, bob, "bob"), None, "unsettled attempts stop counting");
    let winner = let_through(&throttle, bob, "bob");
    fail(&throttle, bob, "bob");
    winner.succeeded();
    assert_eq!(throttle.sweep(), 0, "a success clears the pair");
}

#[test]
fn a_waiting_attempt_goes_through_when_one_succeeds_and_is_refused_when_all_fail() {
    let runtime = rocket::tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let throttle = Throttle::new(2, Duration::from_secs(10));
    let carol = client("192.0.2.4");
    runtime.block_on(async {
        let (first, second) =
            (let_through(&throttle, carol, "carol"), let_through(&throttle, carol, "carol"));
        let waiting = throttle.attempt(carol, "carol");
        let (waited, ()) = rocket::tokio::join!(waiting, async {
            rocket::tokio::task::yield_now().await;
            first.succeeded();
        });
        assert!(waited.is_ok(), "a success makes room");
        drop(waited);
        let waiting = throttle.attempt(carol, "carol");
        let third = let_through(&throttle, carol, "carol");
        let (waited, ()) = rocket::tokio::join!(waiting, async {
            rocket::tokio::task::yield_now().await;
            second.failed();
            third.failed();
        });
        assert_eq!(waited.err(), Some(Refused::Throttled(10)), "two failures: now it is a 429");
    });
}

#[test]
fn an_ipv6_client_counts_by_its_slash_64() {
    let throttle = Throttle::new(1, Duration::from_secs(10));
    fail(&throttle, client("2001:db8:1:2::1"), "bob");
    assert!(refused(&throttle, client("2001:db8:1:2:ffff::9"), "bob").is_some());
    assert_eq!(refused(&throttle, client("2001:db8:1:3::1"), "bob"), None);
}

#[test]
fn a_full_table_refuses_new_pairs_rather_than_letting_them_through_uncounted() {
    let mut throttle = Throttle::new(5, Duration::from_secs(300));
    throttle.max_pairs = 3;
    for n in 0..3 {
        fail(&throttle, client(&format!("192.0.2.{n}")), "dave");
    }
    assert_eq!(refused(&throttle, client("192.0.2.9"), "dave"), Some(Refused::Busy), "never fails open");
    assert_eq!(refused(&throttle, client("192.0.2.1"), "dave"), None, "a tracked pair goes on");
}

#[test]
fn memory_stays_bounded_whatever_is_sent() {
    let throttle = Throttle::new(5, Duration::from_secs(300));
    let long_name = "x".repeat(1_000);
    let mut busy = 0;
    for i in 0..(MAX_PAIRS as u32 + 1_000) {
        match look(&throttle, Some(IpAddr::from(i.to_be_bytes())), &long_name) {
            Some(Ok(attempt)) => attempt.failed(),
            Some(Err(Refused::Busy)) => busy += 1,
            other => panic!("{:?}", other.map(|r| r.err())),
        }
    }
    assert_eq!(throttle.sweep(), MAX_PAIRS);
    assert_eq!(busy, 1_000, "the pairs beyond the table are refused, not let through");
}
