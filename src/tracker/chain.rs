//! The event log's hash chain: how a truncated, deleted-from or edited log is
//! noticed where the database cannot refuse the change.
//!
//! Every event stores the hash of the event before it (`prev_hash`; for the
//! first event, the environment's [`genesis`]) and its own hash: SHA-256 of
//! `prev_hash` and every field the event was written with. A second table,
//! `phasegate_head`, holds the id and hash of the last event and how many
//! were written; a trigger updates it in the statement that inserts the
//! event, so the two cannot disagree unless someone changes one of them by
//! hand, and a guard on the head refuses any update that does not move it
//! one event forward.
//!
//! The chain starts from a hash of the name of the environment that created
//! the log, so a log is bound to its environment even if the environment
//! marker in `phasegate_meta` is deleted or rewritten: another environment
//! reading it finds a chain that does not start from its own genesis.
//!
//! What it protects against: rows deleted (at the start, the middle or the
//! end), the table truncated, a row's fields or hash edited, the head reset
//! or edited, a row inserted by hand with a made-up hash, another
//! environment's log. What it cannot protect against: the hash has no
//! secret, so someone who can write to the database and computes the hash
//! as phasegate does can append a forged event that follows the head (the
//! insert trigger accepts it and the chain verifies), or rewrite the whole
//! chain and the head consistently once the guards are dropped; someone
//! with DDL rights can also disguise the log as schema version 1 (chain
//! columns, head and marker dropped), which is read as an old, unchained
//! log; and someone who drops phasegate's tables altogether leaves a
//! database that reads as one phasegate never used. The triggers that
//! refuse `UPDATE`, `DELETE` and, on Postgres, `TRUNCATE` stop the change
//! before it happens, and every command checks that they are all there
//! (and, on Postgres, enabled) before it reads the log (see
//! [`super::guards`]; on MySQL/MariaDB an account without the `TRIGGER`
//! privilege is shown no triggers and skips that check); the chain is for
//! what they cannot stop (MySQL/MariaDB `TRUNCATE`, triggers disabled for a
//! while and enabled again).

use sha2::{Digest, Sha256};

/// One event as stored, with its chain columns.
#[derive(Debug, Clone)]
pub(crate) struct StoredEvent {
    pub id: i64,
    pub at_ms: i64,
    pub plan: Option<String>,
    pub kind: String,
    pub phase: Option<i64>,
    pub step: Option<String>,
    pub detail: String,
    pub actor: String,
    /// `None` on a row that was not written by phasegate (or not migrated).
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

/// `phasegate_head`: the last event written and how many were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub last_id: i64,
    pub last_hash: String,
    pub events: i64,
}

/// The `prev_hash` of the first event of `env`'s log, and the head's hash
/// while the log is empty: hex SHA-256 of a JSON array naming `env`.
pub(crate) fn genesis(env: &str) -> String {
    let input = serde_json::json!(["phasegate genesis", env]).to_string();
    hex(&Sha256::digest(input.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash of an event (hex SHA-256 of `prev` and its fields, as a JSON
/// array so no two different events spell the same input).
#[allow(clippy::too_many_arguments)]
pub(crate) fn event_hash(
    prev: &str,
    at_ms: i64,
    plan: Option<&str>,
    kind: &str,
    phase: Option<i64>,
    step: Option<&str>,
    detail: &str,
    actor: &str,
) -> String {
    let input =
        serde_json::json!([prev, at_ms, plan, kind, phase, step, detail, actor]).to_string();
    hex(&Sha256::digest(input.as_bytes()))
}

impl StoredEvent {
    /// The hash this event's fields give after `prev`.
    pub fn expected_hash(&self, prev: &str) -> String {
        event_hash(
            prev,
            self.at_ms,
            self.plan.as_deref(),
            &self.kind,
            self.phase,
            self.step.as_deref(),
            &self.detail,
            &self.actor,
        )
    }

    fn label(&self) -> String {
        let mut s = format!("event {} ({}", self.id, self.kind);
        if let Some(p) = &self.plan {
            s.push_str(&format!(" of {p}"));
        }
        if let Some(step) = &self.step {
            s.push_str(&format!(", step {step}"));
        }
        s.push(')');
        s
    }
}

/// Checks the chain of `rows` (the whole log, in id order, read after
/// `head`) against `head`, starting from the [`genesis`] of `env` (the
/// environment that owns the log). Rows after the head's last event are
/// accepted when they continue the chain (appended between the two reads).
/// `Err` says what is wrong and at which event.
pub(crate) fn verify(rows: &[StoredEvent], head: Option<&Head>, env: &str) -> Result<(), String> {
    let start = genesis(env);
    let Some(head) = head else {
        return Err(
            "phasegate_head, which records the log's last event, is missing (its row was deleted or the table truncated)"
                .into(),
        );
    };
    if rows.is_empty() {
        if head.events > 0 {
            return Err(format!(
                "the log is empty, but {} events were written (the last was event {}): the table was truncated or its rows deleted",
                head.events, head.last_id
            ));
        }
        if head.last_hash != start {
            return Err(format!(
                "phasegate_head does not start the log of environment `{env}`: the log was created by another environment, or the head was changed by hand"
            ));
        }
        return Ok(());
    }
    let mut prev = start;
    let mut prev_id: Option<i64> = None;
    for row in rows {
        let (Some(p), Some(h)) = (&row.prev_hash, &row.hash) else {
            return Err(format!(
                "{} has no hash: it was inserted by hand, not by phasegate",
                row.label()
            ));
        };
        if *p != prev {
            return Err(match prev_id {
                None => format!(
                    "{} is the first event in the log but does not start the log of environment `{env}`: the events before it were deleted, or the log was written by another environment",
                    row.label()
                ),
                Some(before) => format!(
                    "{} does not follow event {before}: the events between them were deleted, or one of them was changed",
                    row.label()
                ),
            });
        }
        if row.expected_hash(p) != *h {
            return Err(format!(
                "{} was changed after it was written (its fields no longer match its hash)",
                row.label()
            ));
        }
        prev = h.clone();
        prev_id = Some(row.id);
    }
    let last = rows.last().map_or(0, |r| r.id);
    let count = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    if head.last_id > last || head.events > count {
        return Err(format!(
            "the log ends at event {last}, but {} events were written, the last being event {}: events at the end were deleted",
            head.events, head.last_id
        ));
    }
    // The head is read before the rows (`schema::read_chain`), so events
    // appended in between may follow it; they are chained to it (checked
    // above). The head must match the log up to its own last event.
    let at_head = if head.last_id == 0 {
        Some((genesis(env), 0))
    } else {
        rows.iter()
            .position(|r| r.id == head.last_id)
            .and_then(|i| Some((rows[i].hash.clone()?, i64::try_from(i + 1).ok()?)))
    };
    if at_head != Some((head.last_hash.clone(), head.events)) {
        return Err(format!(
            "phasegate_head (last event {}, {} events) does not match the log (last event {last}, {count} events): one of them was changed by hand",
            head.last_id, head.events
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> (Vec<StoredEvent>, Head) {
        let mut rows = Vec::new();
        let mut prev = genesis("dev");
        for id in 1..=n {
            let mut e = StoredEvent {
                id,
                at_ms: 1000 + id,
                plan: Some("p".into()),
                kind: "step_applied".into(),
                phase: Some(1),
                step: Some(format!("1.s{id}")),
                detail: String::new(),
                actor: "t".into(),
                prev_hash: Some(prev.clone()),
                hash: None,
            };
            let h = e.expected_hash(&prev);
            e.hash = Some(h.clone());
            prev = h;
            rows.push(e);
        }
        let head = Head {
            last_id: n,
            last_hash: prev,
            events: n,
        };
        (rows, head)
    }

    #[test]
    fn an_intact_log_passes() {
        let (rows, head) = chain(4);
        assert_eq!(verify(&rows, Some(&head), "dev"), Ok(()));
        let empty = Head {
            last_id: 0,
            last_hash: genesis("dev"),
            events: 0,
        };
        assert_eq!(verify(&[], Some(&empty), "dev"), Ok(()));
    }

    #[test]
    fn events_appended_after_the_head_was_read_pass_and_a_moved_head_does_not() {
        let err = |r: Result<(), String>| r.err().unwrap_or_default();
        let (rows, _) = chain(4);
        let behind = Head {
            last_id: 2,
            last_hash: rows[1].hash.clone().unwrap_or_default(),
            events: 2,
        };
        assert_eq!(verify(&rows, Some(&behind), "dev"), Ok(()));
        let fresh = Head {
            last_id: 0,
            last_hash: genesis("dev"),
            events: 0,
        };
        assert_eq!(verify(&rows, Some(&fresh), "dev"), Ok(()));
        let miscounted = Head {
            events: 3,
            ..behind.clone()
        };
        assert!(err(verify(&rows, Some(&miscounted), "dev")).contains("does not match the log"));
        let wrong_hash = Head {
            last_hash: "x".into(),
            ..behind
        };
        assert!(err(verify(&rows, Some(&wrong_hash), "dev")).contains("does not match the log"));
    }

    #[test]
    fn another_environment_reads_a_chain_that_is_not_its_own() {
        let err = |r: Result<(), String>| r.err().unwrap_or_default();
        let (rows, head) = chain(3);
        assert!(
            err(verify(&rows, Some(&head), "staging"))
                .contains("does not start the log of environment `staging`")
        );
        let empty = Head {
            last_id: 0,
            last_hash: genesis("dev"),
            events: 0,
        };
        assert!(err(verify(&[], Some(&empty), "staging")).contains("another environment"));
        assert_ne!(genesis("dev"), genesis("staging"));
    }

    #[test]
    fn truncation_deletion_and_edits_name_the_event() {
        let (rows, head) = chain(4);
        let err = |r: Result<(), String>| r.err().unwrap_or_default();
        assert!(err(verify(&[], Some(&head), "dev")).contains("truncated"));
        assert!(err(verify(&rows, None, "dev")).contains("phasegate_head"));
        let mut middle = rows.clone();
        middle.remove(1);
        assert!(err(verify(&middle, Some(&head), "dev")).contains("event 3 (step_applied of p"));
        assert!(err(verify(&rows[1..], Some(&head), "dev")).contains("event 2"));
        assert!(err(verify(&rows[..3], Some(&head), "dev")).contains("at the end were deleted"));
        let mut edited = rows.clone();
        edited[2].detail = "forged".into();
        assert!(
            err(verify(&edited, Some(&head), "dev"))
                .contains("event 3 (step_applied of p, step 1.s3) was changed")
        );
    }
}
