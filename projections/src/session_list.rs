//! The session list as people ask for it: filtered by project, team, time window, sorted
//! by time, cost, messages or tokens (newest, dearest, longest first unless reversed), cut
//! to a limit, with the totals of everything that matched. `cclog sessions` and the
//! HTTP list both read it, so a session is in the same place on every surface.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use cclog_engine::Log;

use crate::archive::epoch_ms;
use crate::archive::{Archive, SessionRecord};
use crate::entry::Usage;
use crate::pricing::PriceTable;
use crate::Result;

/// What sessions are listed in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SessionSort {
    /// Last activity.
    #[default]
    Time,
    Cost,
    /// User and assistant messages.
    Messages,
    /// Input, output and cache tokens.
    Tokens,
}

impl SessionSort {
    pub const NAMES: [&'static str; 4] = ["time", "cost", "messages", "tokens"];

    pub fn parse(name: &str) -> Option<SessionSort> {
        match name {
            "time" => Some(SessionSort::Time),
            "cost" => Some(SessionSort::Cost),
            "messages" | "entries" => Some(SessionSort::Messages),
            "tokens" => Some(SessionSort::Tokens),
            _ => None,
        }
    }
}

/// Which sessions, in what order.
#[derive(Debug, Clone, Default)]
pub struct SessionQuery {
    /// Only sessions whose project folder name or cwd contains this text.
    pub project: Option<String>,
    /// Only these sessions (a team's agents').
    pub only: Option<BTreeSet<String>>,
    /// Only sessions active at or after this instant (ms since the epoch)...
    pub since_ms: Option<i64>,
    /// ...and at or before this one.
    pub until_ms: Option<i64>,
    pub sort: SessionSort,
    /// Oldest, cheapest, shortest first.
    pub reverse: bool,
    pub limit: Option<usize>,
}

/// The listed sessions and what the whole selection adds up to.
#[derive(Debug, Clone)]
pub struct SessionListing {
    /// The sessions to show, in order, at most the query's limit.
    pub sessions: Vec<SessionRecord>,
    /// How many sessions matched before the limit.
    pub matched: usize,
    /// How many sessions the archive holds.
    pub archived: usize,
    /// Totals over every matched session (not only the shown ones).
    pub totals: SessionTotals,
}

#[derive(Debug, Clone, Default)]
pub struct SessionTotals {
    pub messages: u64,
    pub lines: u64,
    pub usage: Usage,
    /// `None` when nothing matched is priced.
    pub cost_usd: Option<f64>,
    pub unpriced: BTreeSet<String>,
}

impl SessionQuery {
    fn matches(&self, session: &SessionRecord) -> bool {
        let project = self.project.as_deref().is_none_or(|wanted| {
            session.project.contains(wanted) || session.cwd.as_deref().is_some_and(|cwd| cwd.contains(wanted))
        });
        let only = self.only.as_ref().is_none_or(|only| only.contains(&session.id));
        let last = session.last_at.as_deref().and_then(epoch_ms);
        let first = session.first_at.as_deref().and_then(epoch_ms).or(last);
        // A session without times is kept unless a window is asked for.
        let since = self.since_ms.is_none_or(|since| last.is_some_and(|last| last >= since));
        let until = self.until_ms.is_none_or(|until| first.is_some_and(|first| first <= until));
        project && only && since && until
    }
}

/// The user and assistant messages of a session — what a person calls its length; its
/// lines (`SessionRecord::entry_counts().entries`) count every transcript line.
pub fn messages_of(session: &SessionRecord) -> u64 {
    let counts = session.entry_counts();
    counts.user + counts.assistant
}

/// The sessions the query asks for, in its order.
pub fn list(log: &Log, query: &SessionQuery, prices: &PriceTable) -> Result<SessionListing> {
    let all = Archive::sessions(log)?;
    let archived = all.len();
    let mut totals = SessionTotals::default();
    // Each session with its cost, priced once for the totals and the order.
    let mut sessions: Vec<(SessionRecord, f64)> = all
        .into_iter()
        .filter(|session| query.matches(session))
        .map(|session| {
            totals.messages += messages_of(&session);
            totals.lines += session.entry_counts().entries;
            totals.usage.add(&session.usage());
            let cost = session.cost(prices);
            if let Some(usd) = cost.usd {
                *totals.cost_usd.get_or_insert(0.0) += usd;
            }
            totals.unpriced.extend(cost.unpriced);
            (session, cost.usd.unwrap_or(0.0))
        })
        .collect();
    let order = |(a, a_cost): &(SessionRecord, f64), (b, b_cost): &(SessionRecord, f64)| -> Ordering {
        let key = match query.sort {
            SessionSort::Time => a.last_at.cmp(&b.last_at),
            SessionSort::Cost => a_cost.total_cmp(b_cost),
            SessionSort::Messages => messages_of(a).cmp(&messages_of(b)),
            SessionSort::Tokens => a.usage().total().cmp(&b.usage().total()),
        };
        // Largest (newest) first; ties by id, so the order never depends on the scan.
        let key = if query.reverse { key } else { key.reverse() };
        key.then_with(|| a.id.cmp(&b.id))
    };
    sessions.sort_by(order);
    let matched = sessions.len();
    sessions.truncate(query.limit.unwrap_or(usize::MAX));
    Ok(SessionListing {
        sessions: sessions.into_iter().map(|(session, _)| session).collect(),
        matched,
        archived,
        totals,
    })
}
