//! The waiting queue in Redis.
//!
//! # Keys (`P` = prefix, `S` = scope: `__global__` or an event UUID)
//!
//! | key | type | content | TTL |
//! |---|---|---|---|
//! | `P q:{S}:meta` | HASH | `seq` (INCR arrival counter), `used`, `listed`, `phase` (once set) | live |
//! | `P q:{S}:queued` | ZSET | QUEUED ticket id → seq, or a pre-queue lottery draw in [-1, 0) (ZRANK + 1 = position) | live |
//! | `P q:{S}:admitted` | ZSET | READY/USED ticket id → expires_at | live + admission |
//! | `P q:{S}:live` | HASH | user id → live ticket id (idempotent enqueue) | live |
//! | `P q:{S}:recent` | ZSET | ticket id → admitted_at, trimmed to the stats window | live |
//! | `P q:{S}:t:<id>` | HASH | `user state seq created admitted expires` | live; retention once finished |
//! | `P q:ticket:<id>` | STRING | the ticket's scope (ids alone do not name a slot) | live; retention once finished |
//! | `P q:active` | SET | scopes with QUEUED or admitted tickets | live |
//!
//! "live" is [`QueueTuning::live_ttl`] (24 h), renewed by activity; "retention" is
//! [`QueueTuning::retention`] (1 h). Every per-scope key carries the `{S}` hash tag, and every
//! mutation is one Lua script over those keys only, so it is atomic and Cluster-safe.
//!
//! # On a Redis Cluster
//!
//! A line is one hash tag, so one slot, so one master: lines of different events spread over the
//! masters (by the CRC16 of the event id), and every operation on a line is one script on one
//! node, atomic without any cross-node protocol (capacity, arrival order, the lottery). The
//! trade-off, chosen on purpose: one hot line is bound to one master's CPU. In `BENCHMARKS.md`'s
//! runs Redis spent 0.38 of a core on 27,000 status reads/s, so one master serves roughly 70,000
//! operations/s on a line, more than the gateways in front of it reach. Sub-lines per slot merged
//! by arrival sequence would lift that bound but cost a cross-slot sequence on every enqueue, a
//! sum of ranks over every sub-line on every position read, and a promotion that is no longer one
//! atomic step (capacity would need its own coordination); not built.
//!
//! # The two global keys
//!
//! `q:ticket:<id>` and `q:active` live in other slots, so scripts cannot write them; the adapter
//! does, one key per command (no command or pipeline ever spans two slots, so the same code runs
//! on one node and on a Redis Cluster), in an order that keeps them right:
//! - enqueue sends its script, the new id's index entry (`SET NX`) and the scope's `q:active`
//!   entry together, one round trip; the id is returned only after all three, so nobody can look
//!   it up earlier. The `q:active` entry may land before the script, and an idle check could take
//!   it out in between, so a script that sets the line's `listed` flag says so and the adapter
//!   adds the scope once more (a second trip, once per line that was idle). A returning user's
//!   ticket gets its own entry rewritten while the new id's is dropped (a second trip too). A crash
//!   before the second trip is healed by the next enqueue of the line, which adds the scope again,
//!   and the user's next enqueue, which rewrites the entry.
//! - a script that sees its scope become idle clears the scope's `listed` flag and reports it; the
//!   adapter then removes the scope from `q:active` and, once that is acknowledged, re-checks the
//!   scope and puts it back if it got busy meanwhile. So a busy scope always ends up listed as
//!   long as: whoever sets the `listed` flag adds the scope after its script (enqueue, when its
//!   reply says so, or when the reply was lost or was a replay of the same call); every removal
//!   is followed by that re-check; and every script that can empty a line clears the flag when it
//!   does. An idle scope is removed by whoever saw it go idle (the promoter also removes idle
//!   scopes it visits).

use crate::conn::Redis;
use crate::reply::{array, at, count, int, malformed, opt_text, text};
use crate::scopes::ScopeCache;
use async_trait::async_trait;
use flash_core::budget::Budget;
use flash_core::domain::{
    Enqueued, LinePhase, LineReading, Place, QueueScope, QueueStats, Ticket, TicketState,
    TicketView,
};
use flash_core::ports::{QueueStore, StoreResult};
use flash_core::{StoreError, TicketId, Timestamp, UserId};
use redis::{Script, Value};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// Lifetimes of queue keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueTuning {
    /// TTL of live keys, renewed when a scope or ticket is touched and less than half of it is
    /// left (so hot reads rarely write). Half of it must exceed the longest admission
    /// (`QUEUE_GATE_TOKEN_TTL_MS`) and the longest wait anyone is expected to sit out.
    pub live_ttl: Duration,
    /// How long a finished (ORDERED/EXPIRED) ticket stays readable.
    pub retention: Duration,
    /// The window of [`QueueStats::recent_admissions`].
    pub stats_window: Duration,
}

impl Default for QueueTuning {
    fn default() -> Self {
        QueueTuning {
            live_ttl: Duration::from_secs(24 * 3600),
            retention: Duration::from_secs(3600),
            stats_window: Duration::from_secs(60),
        }
    }
}

macro_rules! queue_script {
    ($file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("lua/queue_common.lua"),
                include_str!(concat!("lua/", $file))
            ))
        })
    };
}

static ENQUEUE: LazyLock<Script> = queue_script!("queue_enqueue.lua");
static TICKET: LazyLock<Script> = queue_script!("queue_ticket.lua");
static PROMOTE: LazyLock<Script> = queue_script!("queue_promote.lua");
static ENTER: LazyLock<Script> = queue_script!("queue_enter.lua");
static LEAVE: LazyLock<Script> = queue_script!("queue_leave.lua");
static ADMISSION: LazyLock<Script> = queue_script!("queue_admission.lua");
static CONSUME: LazyLock<Script> = queue_script!("queue_consume.lua");
static STATS: LazyLock<Script> = queue_script!("queue_stats.lua");
static STATUS: LazyLock<Script> = queue_script!("queue_status.lua");
static PHASE: LazyLock<Script> = queue_script!("queue_phase.lua");
/// Runs only when a scope goes idle.
static RELIST: LazyLock<Script> = queue_script!("queue_relist.lua");

/// The keys of one scope; see the module docs.
struct ScopeKeys {
    meta: String,
    queued: String,
    admitted: String,
    live: String,
    recent: String,
    tickets: String,
}

/// What an operation found out beyond its reply, to settle the global keys afterwards.
#[derive(Debug, Default)]
struct Aftermath {
    /// The scope went idle while listed: take it out of the active set.
    went_idle: bool,
    /// The ticket's index entry can go now (`Some(retention)`), or at once (`Some(ZERO)`).
    shorten_index: Option<(TicketId, Duration)>,
}

impl Aftermath {
    /// No ticket's index entry changes.
    fn index_kept(went_idle: bool) -> Self {
        Aftermath {
            went_idle,
            shorten_index: None,
        }
    }
}

/// [`QueueStore`] on Redis. Cheap to clone (clones share the ticket-scope cache); share one
/// [`Redis`] between all adapters.
#[derive(Debug, Clone)]
pub struct RedisQueueStore {
    redis: Redis,
    tuning: QueueTuning,
    /// Ticket id → scope for [`QueueStore::status`], so that a poll is one round trip.
    scopes: Arc<ScopeCache>,
}

impl RedisQueueStore {
    pub fn new(redis: Redis) -> Self {
        Self::with_tuning(redis, QueueTuning::default())
    }

    pub fn with_tuning(redis: Redis, tuning: QueueTuning) -> Self {
        RedisQueueStore {
            redis,
            tuning,
            scopes: Arc::default(),
        }
    }

    /// Remembers at most `budget.max()` ticket scopes in process (SPEC §11).
    pub fn with_scope_budget(mut self, budget: Arc<Budget>) -> Self {
        self.scopes = Arc::new(ScopeCache::new(budget));
        self
    }

    pub fn scope_budget(&self) -> Arc<Budget> {
        self.scopes.budget()
    }

    fn keys(&self, scope: QueueScope) -> ScopeKeys {
        let p = self.redis.prefix();
        let s = scope.to_string();
        ScopeKeys {
            meta: format!("{p}q:{{{s}}}:meta"),
            queued: format!("{p}q:{{{s}}}:queued"),
            admitted: format!("{p}q:{{{s}}}:admitted"),
            live: format!("{p}q:{{{s}}}:live"),
            recent: format!("{p}q:{{{s}}}:recent"),
            tickets: format!("{p}q:{{{s}}}:t:"),
        }
    }

    fn index_key(&self, id: TicketId) -> String {
        format!("{}q:ticket:{id}", self.redis.prefix())
    }

    fn active_key(&self) -> String {
        format!("{}q:active", self.redis.prefix())
    }

    fn live_ms(&self) -> u64 {
        millis(self.tuning.live_ttl)
    }

    /// Runs a queue script over `scope`'s keys with the common arguments and `extra` ones.
    async fn call(
        &self,
        what: &'static str,
        script: &Script,
        scope: QueueScope,
        now: Timestamp,
        extra: &[String],
    ) -> StoreResult<Value> {
        let k = self.keys(scope);
        let mut inv = script.prepare_invoke();
        inv.key(&k.meta)
            .key(&k.queued)
            .key(&k.admitted)
            .key(&k.live)
            .key(&k.recent)
            .arg(&k.tickets)
            .arg(now.millis())
            .arg(self.live_ms())
            .arg(millis(self.tuning.retention));
        for a in extra {
            inv.arg(a);
        }
        self.redis.query(what, &inv).await
    }

    /// The scope of ticket `id`, renewing its index entry once half its TTL is gone (like the
    /// keys it points to); `None` when unknown.
    async fn scope_of(&self, id: TicketId, now: Timestamp) -> StoreResult<Option<QueueScope>> {
        let key = self.index_key(id);
        let live = self.live_ms();
        let (found, pttl): (Option<String>, i64) = self
            .redis
            .query(
                "ticket index",
                redis::pipe().cmd("GET").arg(&key).cmd("PTTL").arg(&key),
            )
            .await?;
        let Some(s) = found else {
            return Ok(None);
        };
        let scope = QueueScope::parse(&s)
            .ok_or_else(|| malformed("ticket index", format!("scope {s:?}")))?;
        self.scopes.put(id, scope, now);
        if pttl == -1 || u64::try_from(pttl).is_ok_and(|left| left.saturating_mul(2) < live) {
            let key = self.index_key(id);
            self.redis
                .query::<()>("ticket index", redis::cmd("PEXPIRE").arg(&key).arg(live))
                .await?;
        }
        Ok(Some(scope))
    }

    /// Runs `script` on the line of ticket `id` (nothing if the ticket is unknown), reads its
    /// `{went_idle, ticket|nil}` reply and settles the global keys after it.
    async fn on_ticket(
        &self,
        what: &'static str,
        script: &Script,
        id: TicketId,
        now: Timestamp,
        extra: &[String],
    ) -> StoreResult<Option<Ticket>> {
        let Some(scope) = self.scope_of(id, now).await? else {
            return Ok(None);
        };
        let v = self.call(what, script, scope, now, extra).await?;
        let (went_idle, ticket) = self.flagged_ticket(v, scope, what)?;
        let after = Aftermath {
            went_idle,
            shorten_index: self.index_after(id, ticket.as_ref()),
        };
        self.settle(scope, after).await?;
        Ok(ticket)
    }

    /// Settles the global keys after a script (see the module docs). The index entry and the
    /// active set live in different slots, so they are written by separate commands; the relist
    /// check runs only once the removal from the active set is acknowledged.
    async fn settle(&self, scope: QueueScope, after: Aftermath) -> StoreResult<()> {
        let index = async {
            let Some((id, ttl)) = after.shorten_index else {
                return Ok(());
            };
            let key = self.index_key(id);
            let mut cmd = if ttl.is_zero() {
                redis::cmd("DEL")
            } else {
                redis::cmd("PEXPIRE")
            };
            cmd.arg(key);
            if !ttl.is_zero() {
                cmd.arg(millis(ttl));
            }
            self.redis.query("queue settle", &cmd).await
        };
        let relist = async {
            if !after.went_idle {
                return Ok(());
            }
            let scope_s = scope.to_string();
            let active = self.active_key();
            self.redis
                .query::<()>(
                    "queue settle",
                    redis::cmd("SREM").arg(&active).arg(&scope_s),
                )
                .await?;
            let v = self
                .call(
                    "queue relist",
                    &RELIST,
                    scope,
                    Timestamp::from_millis(0),
                    &[],
                )
                .await?;
            if int(&v, "queue relist")? == 1 {
                self.list(&scope.to_string()).await?;
            }
            Ok(())
        };
        futures::try_join!(index, relist).map(|_| ())
    }

    /// Adds `scope` to the active set.
    async fn list(&self, scope: &str) -> StoreResult<()> {
        let active = self.active_key();
        let live = self.live_ms();
        self.redis
            .query(
                "queue list scope",
                redis::pipe()
                    .cmd("SADD")
                    .arg(&active)
                    .arg(scope)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(&active)
                    .arg(live)
                    .ignore(),
            )
            .await
    }

    /// Points ticket `id`'s index entry at `scope`.
    async fn index(&self, id: TicketId, scope: &str) -> StoreResult<()> {
        let mut set = redis::cmd("SET");
        set.arg(self.index_key(id))
            .arg(scope)
            .arg("PX")
            .arg(self.live_ms());
        self.redis.query("queue index", &set).await
    }

    async fn unindex(&self, key: &str) -> StoreResult<()> {
        self.redis
            .query("queue index", redis::cmd("DEL").arg(key))
            .await
    }

    /// Drops, as well as it can, the index entry `key` of an id an enqueue did not use, unless
    /// its `SET NX` is known not to have written it.
    async fn drop_unused(&self, key: &str, wrote: &StoreResult<bool>) {
        if !matches!(wrote, Ok(false)) {
            let _ = self.unindex(key).await;
        }
    }

    /// Reads `{went_idle, ticket|nil}` replies.
    fn flagged_ticket(
        &self,
        v: Value,
        scope: QueueScope,
        what: &str,
    ) -> StoreResult<(bool, Option<Ticket>)> {
        let items = array(v, what)?;
        let idle = int(at(&items, 0, what)?, what)? == 1;
        let ticket = match at(&items, 1, what)? {
            Value::Nil => None,
            t => Some(parse_ticket(t, scope, what)?),
        };
        Ok((idle, ticket))
    }

    /// The index entry of a ticket that just finished (or vanished) need not outlive it.
    fn index_after(&self, id: TicketId, ticket: Option<&Ticket>) -> Option<(TicketId, Duration)> {
        match ticket {
            None => Some((id, Duration::ZERO)),
            Some(t) if !t.state.is_live() => Some((id, self.tuning.retention)),
            Some(_) => None,
        }
    }
}

fn parse_phase(v: &Value, what: &str) -> StoreResult<LinePhase> {
    let s = text(v, what)?;
    LinePhase::decode(&s).ok_or_else(|| malformed(what, format!("phase {s:?}")))
}

/// The line score of a lottery draw: its top 53 bits as a double in [-1, 0), exactly
/// representable, so draws keep their order and every lottery ticket is ahead of every arrival
/// (scored by its sequence number, from 1).
fn lottery_score(draw: u64) -> f64 {
    const TOP_BITS: f64 = (1u64 << 53) as f64;
    (draw >> 11) as f64 / TOP_BITS - 1.0
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The enqueue script's reply: `Some((created, ticket, listed))`, or `None` when the id exists.
fn enqueue_reply(v: Value, scope: QueueScope) -> StoreResult<Option<(bool, Ticket, bool)>> {
    const WHAT: &str = "queue enqueue";
    let items = array(v, WHAT)?;
    let created = match int(at(&items, 0, WHAT)?, WHAT)? {
        1 => true,
        0 => false,
        -1 => return Ok(None),
        n => return Err(malformed(WHAT, format!("status {n}"))),
    };
    let ticket = parse_ticket(at(&items, 1, WHAT)?, scope, WHAT)?;
    let listed = int(at(&items, 2, WHAT)?, WHAT)? == 1;
    Ok(Some((created, ticket, listed)))
}

/// `[id, user, state, seq, created, admitted|"", expires|""]`.
fn parse_ticket(v: &Value, scope: QueueScope, what: &str) -> StoreResult<Ticket> {
    let Value::Array(f) = v else {
        return Err(malformed(what, format!("expected a ticket, got {v:?}")));
    };
    let id = text(at(f, 0, what)?, what)?;
    let user = text(at(f, 1, what)?, what)?;
    let state = text(at(f, 2, what)?, what)?;
    let optional_ms = |i: usize| -> StoreResult<Option<Timestamp>> {
        match opt_text(at(f, i, what)?, what)?.as_deref() {
            None | Some("") => Ok(None),
            Some(s) => s
                .parse::<i64>()
                .map(|ms| Some(Timestamp::from_millis(ms)))
                .map_err(|_| malformed(what, format!("timestamp {s:?}"))),
        }
    };
    Ok(Ticket {
        id: id
            .parse()
            .map_err(|_| malformed(what, format!("ticket id {id:?}")))?,
        user: user
            .parse()
            .map_err(|_| malformed(what, format!("user id {user:?}")))?,
        scope,
        state: TicketState::parse(&state)
            .ok_or_else(|| malformed(what, format!("state {state:?}")))?,
        seq: count(at(f, 3, what)?, what)?,
        created_at: Timestamp::from_millis(int(at(f, 4, what)?, what)?),
        admitted_at: optional_ms(5)?,
        expires_at: optional_ms(6)?,
    })
}

#[async_trait]
impl QueueStore for RedisQueueStore {
    async fn enqueue_at(
        &self,
        ticket: TicketId,
        user: UserId,
        scope: QueueScope,
        now: Timestamp,
        place: Place,
    ) -> StoreResult<Enqueued> {
        const WHAT: &str = "queue enqueue";
        let (score, prequeue) = match place {
            Place::Arrival => (String::new(), String::new()),
            Place::Lottery { draw, starts_at } => (
                lottery_score(draw).to_string(),
                LinePhase::Prequeue { starts_at }.encode(),
            ),
        };
        // One round trip for a new ticket (module docs): the script, the new id's index entry
        // (NX: an entry that exists belongs to a ticket that exists) and the active set, sent
        // together; each is its own command in its own slot.
        let scope_s = scope.to_string();
        let speculative = self.index_key(ticket);
        let mut set = redis::cmd("SET");
        set.arg(&speculative)
            .arg(&scope_s)
            .arg("PX")
            .arg(self.live_ms())
            .arg("NX");
        let args = [ticket.to_string(), user.to_string(), score, prequeue];
        let script = self.call(WHAT, &ENQUEUE, scope, now, &args);
        let (v, wrote, listed) = futures::join!(
            script,
            self.redis.query::<Option<String>>(WHAT, &set),
            self.list(&scope_s)
        );
        let wrote = wrote.map(|w| w.is_some());
        let reply = match v.and_then(|v| enqueue_reply(v, scope)) {
            Ok(reply) => reply,
            Err(e) => {
                // The script may have run with its reply lost: list the line after it all the
                // same, and drop the entry of an id that may never have become a ticket.
                let drop = self.drop_unused(&speculative, &wrote);
                let _ = futures::join!(self.list(&scope_s), drop);
                return Err(e);
            }
        };
        let Some((created, t, listed_line)) = reply else {
            // The id is another ticket's; an entry written here is right for it (same line) but
            // would keep the live TTL instead of that ticket's own.
            if matches!(wrote, Ok(true)) {
                let _ = self.unindex(&speculative).await;
            }
            return Err(StoreError::Conflict(format!(
                "ticket {ticket} already exists"
            )));
        };
        // A replay of this very call (its reply lost, the command retried by the Cluster
        // client) finds its own ticket and the flag it set itself: it listed the line.
        let replay = !created && t.id == ticket;
        // The rare second trip: a line this call listed is added again now that its script has
        // run (a concurrent idle check may have removed it in between); a returning user's
        // ticket gets its own entry rewritten (what heals a crash) and the new id's is dropped.
        let relist = async {
            if listed_line || replay || listed.is_err() {
                self.list(&scope_s).await
            } else {
                Ok(())
            }
        };
        let index = async {
            match (created || replay, wrote) {
                (true, Ok(true)) => Ok(()),
                (true, _) => self.index(t.id, &scope_s).await,
                (false, wrote) => {
                    let drop = self.drop_unused(&speculative, &wrote);
                    futures::join!(drop, self.index(t.id, &scope_s)).1
                }
            }
        };
        futures::try_join!(relist, index)?;
        self.scopes.put(t.id, scope, now);
        Ok(Enqueued { ticket: t, created })
    }

    async fn ticket(&self, id: TicketId, now: Timestamp) -> StoreResult<Option<Ticket>> {
        self.on_ticket("queue ticket", &TICKET, id, now, &[id.to_string()])
            .await
    }

    async fn position(&self, ticket: &Ticket) -> StoreResult<Option<u64>> {
        let queued = self.keys(ticket.scope).queued;
        let id = ticket.id.to_string();
        // Only QUEUED tickets are in the set, so the rank counts exactly the QUEUED ones ahead.
        let rank: Option<i64> = self
            .redis
            .query("queue position", redis::cmd("ZRANK").arg(&queued).arg(&id))
            .await?;
        rank.map(|r| {
            u64::try_from(r)
                .map(|r| r + 1)
                .map_err(|_| malformed("queue position", format!("rank {r}")))
        })
        .transpose()
    }

    async fn stats(&self, scope: QueueScope, now: Timestamp) -> StoreResult<QueueStats> {
        const WHAT: &str = "queue stats";
        let cutoff = now.minus(self.tuning.stats_window).millis().to_string();
        let v = self.call(WHAT, &STATS, scope, now, &[cutoff]).await?;
        let items = array(v, WHAT)?;
        let went_idle = int(at(&items, 0, WHAT)?, WHAT)? == 1;
        let stats = QueueStats {
            queued: count(at(&items, 1, WHAT)?, WHAT)?,
            admitted: count(at(&items, 2, WHAT)?, WHAT)?,
            used: count(at(&items, 3, WHAT)?, WHAT)?,
            recent_admissions: count(at(&items, 4, WHAT)?, WHAT)?,
            window_ms: millis(self.tuning.stats_window),
            phase: parse_phase(at(&items, 5, WHAT)?, WHAT)?,
            decayed_admissions_milli: count(at(&items, 6, WHAT)?, WHAT)?,
        };
        self.settle(scope, Aftermath::index_kept(went_idle)).await?;
        Ok(stats)
    }

    async fn status(&self, id: TicketId, now: Timestamp) -> StoreResult<Option<TicketView>> {
        const WHAT: &str = "queue status";
        // The index is read (and renewed) at least every quarter of its TTL by someone polling.
        let fresh_since = now.minus(self.tuning.live_ttl / 4);
        let scope = match self.scopes.get(id, fresh_since) {
            Some(scope) => scope,
            None => match self.scope_of(id, now).await? {
                Some(scope) => scope,
                None => return Ok(None),
            },
        };
        let cutoff = now.minus(self.tuning.stats_window).millis().to_string();
        let v = self
            .call(WHAT, &STATUS, scope, now, &[id.to_string(), cutoff])
            .await?;
        let items = array(v, WHAT)?;
        let went_idle = int(at(&items, 0, WHAT)?, WHAT)? == 1;
        let view = match at(&items, 1, WHAT)? {
            Value::Nil => None,
            t => {
                let ticket = parse_ticket(t, scope, WHAT)?;
                let rank = int(at(&items, 6, WHAT)?, WHAT)?;
                let position = u64::try_from(rank).ok().map(|r| r + 1);
                Some(TicketView {
                    ticket,
                    position,
                    stats: QueueStats {
                        queued: count(at(&items, 2, WHAT)?, WHAT)?,
                        admitted: count(at(&items, 3, WHAT)?, WHAT)?,
                        used: count(at(&items, 4, WHAT)?, WHAT)?,
                        recent_admissions: count(at(&items, 5, WHAT)?, WHAT)?,
                        window_ms: millis(self.tuning.stats_window),
                        phase: parse_phase(at(&items, 7, WHAT)?, WHAT)?,
                        decayed_admissions_milli: count(at(&items, 8, WHAT)?, WHAT)?,
                    },
                })
            }
        };
        if view.is_none() {
            self.scopes.forget(id);
        }
        let after = Aftermath {
            went_idle,
            shorten_index: self.index_after(id, view.as_ref().map(|v| &v.ticket)),
        };
        self.settle(scope, after).await?;
        Ok(view)
    }

    async fn promote_counting(
        &self,
        scope: QueueScope,
        capacity: u64,
        reading: Option<LineReading>,
        now: Timestamp,
        ttl: Duration,
    ) -> StoreResult<Vec<Ticket>> {
        const WHAT: &str = "queue promote";
        let expires = now.plus(ttl);
        let span = self.live_ms().saturating_add(millis(ttl));
        let cutoff = now.minus(self.tuning.stats_window);
        let v = self
            .call(
                WHAT,
                &PROMOTE,
                scope,
                now,
                &[
                    capacity.to_string(),
                    expires.millis().to_string(),
                    span.to_string(),
                    cutoff.millis().to_string(),
                    reading.map_or(0, |r| r.admitted).to_string(),
                    reading.map_or_else(String::new, |r| r.at.millis().to_string()),
                ],
            )
            .await?;
        let items = array(v, WHAT)?;
        let idle = int(at(&items, 0, WHAT)?, WHAT)? == 1;
        let admitted = match at(&items, 1, WHAT)? {
            Value::Array(ts) => ts
                .iter()
                .map(|t| parse_ticket(t, scope, WHAT))
                .collect::<StoreResult<Vec<_>>>()?,
            other => return Err(malformed(WHAT, format!("admitted {other:?}"))),
        };
        // The promoter only visits listed scopes, so an idle one it sees is taken out even if
        // another call cleared its flag first (that caller may have lost a race with an enqueue).
        self.settle(scope, Aftermath::index_kept(idle)).await?;
        Ok(admitted)
    }

    async fn set_phase(
        &self,
        scope: QueueScope,
        phase: LinePhase,
        now: Timestamp,
    ) -> StoreResult<bool> {
        const WHAT: &str = "queue phase";
        let v = self
            .call(WHAT, &PHASE, scope, now, &[phase.encode()])
            .await?;
        Ok(int(&v, WHAT)? == 1)
    }

    async fn enter(
        &self,
        id: TicketId,
        user: UserId,
        now: Timestamp,
        ttl: Duration,
    ) -> StoreResult<Option<Ticket>> {
        let expires = now.plus(ttl);
        let span = self.live_ms().saturating_add(millis(ttl));
        let args = [
            id.to_string(),
            user.to_string(),
            expires.millis().to_string(),
            span.to_string(),
        ];
        self.on_ticket("queue enter", &ENTER, id, now, &args).await
    }

    async fn leave(
        &self,
        id: TicketId,
        user: UserId,
        now: Timestamp,
    ) -> StoreResult<Option<Ticket>> {
        const WHAT: &str = "queue leave";
        let Some(scope) = self.scope_of(id, now).await? else {
            return Ok(None);
        };
        let v = self
            .call(
                WHAT,
                &LEAVE,
                scope,
                now,
                &[id.to_string(), user.to_string()],
            )
            .await?;
        let (went_idle, ticket) = self.flagged_ticket(v, scope, WHAT)?;
        // `None` here may just mean "another user's": keep the index unless the ticket finished.
        let shorten_index = ticket
            .as_ref()
            .filter(|t| !t.state.is_live())
            .map(|_| (id, self.tuning.retention));
        self.settle(
            scope,
            Aftermath {
                went_idle,
                shorten_index,
            },
        )
        .await?;
        Ok(ticket)
    }

    async fn admission(
        &self,
        user: UserId,
        scope: QueueScope,
        now: Timestamp,
    ) -> StoreResult<Option<Ticket>> {
        const WHAT: &str = "queue admission";
        let v = self
            .call(WHAT, &ADMISSION, scope, now, &[user.to_string()])
            .await?;
        let (went_idle, ticket) = self.flagged_ticket(v, scope, WHAT)?;
        self.settle(scope, Aftermath::index_kept(went_idle)).await?;
        Ok(ticket)
    }

    async fn consume(&self, id: TicketId, now: Timestamp) -> StoreResult<bool> {
        const WHAT: &str = "queue consume";
        let Some(scope) = self.scope_of(id, now).await? else {
            return Ok(false);
        };
        let v = self
            .call(WHAT, &CONSUME, scope, now, &[id.to_string()])
            .await?;
        let items = array(v, WHAT)?;
        let went_idle = int(at(&items, 0, WHAT)?, WHAT)? == 1;
        let changed = int(at(&items, 1, WHAT)?, WHAT)? == 1;
        self.settle(
            scope,
            Aftermath {
                went_idle,
                shorten_index: changed.then_some((id, self.tuning.retention)),
            },
        )
        .await?;
        Ok(changed)
    }

    async fn active_scopes(&self) -> StoreResult<Vec<QueueScope>> {
        const WHAT: &str = "queue active scopes";
        let active = self.active_key();
        let live = self.live_ms();
        let (members, _): (Vec<String>, i64) = self
            .redis
            .query(
                WHAT,
                redis::pipe()
                    .cmd("SMEMBERS")
                    .arg(&active)
                    .cmd("PEXPIRE")
                    .arg(&active)
                    .arg(live),
            )
            .await?;
        let mut scopes = members
            .iter()
            .map(|s| QueueScope::parse(s).ok_or_else(|| malformed(WHAT, format!("scope {s:?}"))))
            .collect::<StoreResult<Vec<_>>>()?;
        scopes.sort();
        Ok(scopes)
    }
}
