//! The repair backlog's rules, sans-IO: what becomes of one entry (an object version recorded
//! with shards to rebuild, or only with manifest records to copy) from what its sites answer.
//! The gateway's repairer (`gateway/repair.rs`) asks the sites and carries the steps out; the
//! decisions are made here, with time an argument, and `core/tests/backlog_sim.rs` drives them
//! through seeded histories of outages, rot, late commits and overwrites.
//!
//! Every verdict either keeps the entry for a later pass, saying why, or lets it leave the
//! backlog with an account of why: nothing stays forever once every site answers.

/// What the manifest nodes said about the entry's version this pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Census {
    /// A node that answered holds a record of the version that opens.
    pub found: bool,
    /// Manifest nodes that gave no answer.
    pub unanswered: usize,
}

/// How rebuilding the entry's shards went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rebuild {
    /// Every shard asked for is whole again.
    Done,
    /// Some stripe has fewer than `needed` good blocks at the sites that answered;
    /// `unanswered` sites gave no answer.
    Short {
        /// Good blocks in the worst stripe.
        good: usize,
        /// k.
        needed: usize,
        /// Sites that gave no answer.
        unanswered: usize,
    },
    /// Failed otherwise (a write refused, a site too slow): worth another try.
    Failed,
}

/// What the driver does next for the entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Ask the manifest nodes about the version, then report with [`Entry::census`].
    AskRecords,
    /// Rebuild the entry's shards, then report with [`Entry::rebuilt`].
    Rebuild,
    /// Copy the version's manifest record to the nodes that lack it, then report with
    /// [`Entry::copied`].
    CopyRecords,
    /// Carry out the verdict.
    Done(Verdict),
}

/// Why an entry stays for a later pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// No node holds a record of the version yet, for less than the grace a staged write
    /// gets to commit.
    Unclaimed,
    /// Too few good blocks at the sites that answered, and some did not answer.
    SitesAway,
    /// The rebuild failed for another reason.
    Failed,
}

/// What becomes of one entry this pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A failed write being withdrawn: nothing to rebuild. Leaves the backlog.
    Withdrawn,
    /// No manifest node has held a record of the version for longer than the grace: the
    /// leftovers of a failed write, not a version. Leaves the backlog.
    NotAVersion,
    /// Stays for a later pass.
    Deferred(Wait),
    /// Its shards are whole. Leaves the backlog, or stays for its manifest records alone while
    /// some node that should hold one does not (`records_complete` false).
    Repaired {
        /// Every node that should hold the record does.
        records_complete: bool,
    },
    /// Every site answered with too few good blocks, and a newer version of its key is
    /// current: read by no request. Leaves the backlog.
    Superseded,
    /// Every site answered with too few good blocks: lost. Leaves the backlog for the list of
    /// lost versions (which `status` and `heal` both name).
    Lost {
        /// Good blocks in the worst stripe.
        good: usize,
        /// k.
        needed: usize,
    },
}

impl Verdict {
    /// Whether the entry leaves the repair backlog.
    pub fn leaves(&self) -> bool {
        !matches!(
            self,
            Self::Deferred(_)
                | Self::Repaired {
                    records_complete: false
                }
        )
    }
}

/// One backlog entry's rules across passes. It remembers since when no node has claimed its
/// version (`now` in milliseconds of any monotonic clock).
///
/// Calling contract, each pass: [`Entry::begin`]; on `Step::AskRecords` ask and call
/// [`Entry::census`]; on `Step::Rebuild` rebuild and call
/// [`Entry::rebuilt`]; on `Step::CopyRecords` copy and call [`Entry::copied`]; carry out the
/// `Step::Done` verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    unclaimed_since: Option<u64>,
    /// This pass's census.
    found: bool,
    unanswered: usize,
}

impl Entry {
    /// A new entry's rules.
    pub fn new() -> Self {
        Self::default()
    }

    /// A pass begins: `withdrawing` says the version is a failed write being withdrawn.
    pub fn begin(&self, withdrawing: bool) -> Step {
        if withdrawing {
            Step::Done(Verdict::Withdrawn)
        } else {
            Step::AskRecords
        }
    }

    /// What the manifest nodes said about the version, and whether shards are to be rebuilt.
    /// `grace` is how long a version may go unclaimed before it counts as a failed write's
    /// leftovers.
    pub fn census(&mut self, now: u64, grace: u64, census: Census, has_shards: bool) -> Step {
        (self.found, self.unanswered) = (census.found, census.unanswered);
        if !census.found && census.unanswered == 0 {
            let since = *self.unclaimed_since.get_or_insert(now);
            if now.saturating_sub(since) > grace {
                return Step::Done(Verdict::NotAVersion);
            }
        } else {
            self.unclaimed_since = None;
        }
        if has_shards {
            Step::Rebuild
        } else {
            self.after_shards()
        }
    }

    fn after_shards(&self) -> Step {
        if self.found {
            Step::CopyRecords
        } else {
            Step::Done(Verdict::Repaired {
                records_complete: false,
            })
        }
    }

    /// The rebuild's result; `superseded`: a newer version of the key is current.
    pub fn rebuilt(&self, result: Rebuild, superseded: bool) -> Step {
        match result {
            Rebuild::Done => self.after_shards(),
            Rebuild::Short {
                good,
                needed,
                unanswered: 0,
            } if self.found => Step::Done(if superseded {
                Verdict::Superseded
            } else {
                Verdict::Lost { good, needed }
            }),
            Rebuild::Short { .. } if self.found => Step::Done(Verdict::Deferred(Wait::SitesAway)),
            // Without a record found, a shortfall proves nothing yet: the record's nodes are
            // away, or no node claims the version (yet).
            Rebuild::Short { .. } if self.unanswered > 0 => {
                Step::Done(Verdict::Deferred(Wait::SitesAway))
            }
            Rebuild::Short { .. } => Step::Done(Verdict::Deferred(Wait::Unclaimed)),
            Rebuild::Failed => Step::Done(Verdict::Deferred(Wait::Failed)),
        }
    }

    /// The record copies: `complete` when every node that should hold the record does.
    pub fn copied(&self, complete: bool) -> Verdict {
        Verdict::Repaired {
            records_complete: complete,
        }
    }
}
