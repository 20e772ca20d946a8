use chrono::TimeZone;

use super::*;

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
}

fn limits() -> SessionLimits {
    SessionLimits { max_sessions: 2, idle_timeout: Duration::seconds(100), max_events: 3 }
}

fn persisted_ids(effects: &[SessionEffect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            SessionEffect::Persist(session) => Some(session.id.clone()),
            SessionEffect::Forget(_) => None,
        })
        .collect()
}

#[test]
fn a_session_is_persisted_when_opened_and_forgotten_when_closed() {
    let mut sessions = McpSessions::new(limits());
    sessions.open(at(0), "s1".into(), "2025-06-18".into()).unwrap();
    assert_eq!(persisted_ids(&sessions.drain_effects()), ["s1"]);
    let view = sessions.touch(at(1), "s1").unwrap();
    assert_eq!(view.protocol_version, "2025-06-18");
    assert!(!view.initialized);
    assert!(sessions.drain_effects().is_empty(), "a use soon after is not written again");
    sessions.initialized(at(2), "s1").unwrap();
    assert_eq!(persisted_ids(&sessions.drain_effects()), ["s1"]);
    assert!(sessions.touch(at(3), "s1").unwrap().initialized);
    sessions.close(at(4), "s1").unwrap();
    assert_eq!(sessions.drain_effects(), [SessionEffect::Forget("s1".into())]);
    assert_eq!(sessions.touch(at(5), "s1"), Err(SessionError::NotFound));
    assert_eq!(sessions.close(at(5), "s1"), Err(SessionError::NotFound));
}

#[test]
fn the_number_of_sessions_is_bounded_and_expired_ones_make_room() {
    let mut sessions = McpSessions::new(limits());
    sessions.open(at(0), "a".into(), "v".into()).unwrap();
    sessions.open(at(50), "b".into(), "v".into()).unwrap();
    assert_eq!(sessions.open(at(60), "c".into(), "v".into()), Err(SessionError::TooMany { limit: 2 }));
    assert_eq!(sessions.open(at(60), "a".into(), "v".into()), Err(SessionError::Exists));
    sessions.drain_effects();
    // `a` idles out at 100 s; `b` was used at 50 s.
    sessions.open(at(100), "c".into(), "v".into()).unwrap();
    assert_eq!(
        sessions.drain_effects(),
        [SessionEffect::Forget("a".into()), SessionEffect::Persist(sessions.sessions["c"].clone())]
    );
    assert_eq!(sessions.touch(at(101), "a"), Err(SessionError::NotFound));
    assert_eq!(sessions.len(), 2);
}

#[test]
fn use_keeps_a_session_alive_and_is_written_now_and_then() {
    let mut sessions = McpSessions::new(limits());
    sessions.open(at(0), "a".into(), "v".into()).unwrap();
    sessions.drain_effects();
    for t in (5..300).step_by(5) {
        sessions.touch(at(t), "a").unwrap();
    }
    let writes = persisted_ids(&sessions.drain_effects()).len();
    assert!((20..=60).contains(&writes), "a write every tenth of the idle timeout, not every use: {writes}");
    assert_eq!(sessions.touch(at(399), "a"), Err(SessionError::NotFound), "idle from 295 s to 399 s");
}

#[test]
fn the_event_log_is_bounded_and_replays_one_stream() {
    let mut sessions = McpSessions::new(SessionLimits { max_events: 3, ..limits() });
    sessions.open(at(0), "a".into(), "v".into()).unwrap();
    let first = sessions.record(at(1), "a", "get".into(), "m1".into()).unwrap();
    let other = sessions.record(at(1), "a", "post-1".into(), "r1".into()).unwrap();
    let second = sessions.record(at(2), "a", "get".into(), "m2".into()).unwrap();
    assert!(first < other && other < second);
    let replay = sessions.replay(at(3), "a", first).unwrap();
    assert_eq!(replay.stream, "get");
    assert_eq!(replay.events.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(), ["m2"]);
    assert_eq!(sessions.replay(at(3), "a", other).unwrap().events, []);
    sessions.record(at(4), "a", "get".into(), "m3".into()).unwrap();
    assert_eq!(sessions.replay(at(5), "a", first), Err(SessionError::UnknownEvent(first)), "dropped from the log");
    assert_eq!(sessions.replay(at(5), "b", first), Err(SessionError::NotFound));
}

#[test]
fn restored_sessions_continue_and_expired_ones_are_forgotten() {
    let mut before = McpSessions::new(limits());
    before.open(at(0), "old".into(), "v".into()).unwrap();
    before.open(at(90), "new".into(), "v".into()).unwrap();
    before.record(at(90), "new", "get".into(), "m1".into()).unwrap();
    let stored: Vec<McpSession> = before.sessions.values().cloned().collect();

    let mut after = McpSessions::new(limits());
    after.restore(at(150), stored);
    assert_eq!(after.drain_effects(), [SessionEffect::Forget("old".into())]);
    assert_eq!(after.touch(at(151), "new").unwrap().protocol_version, "v");
    let next = after.record(at(152), "new", "get".into(), "m2".into()).unwrap();
    assert_eq!(next, 2, "event ids continue where they were");
    assert_eq!(after.replay(at(153), "new", 1).unwrap().events.len(), 1);
}
