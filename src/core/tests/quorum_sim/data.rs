//! The simulation's data reads: the hedged read (`core::ops::HedgedRead`) of the version a
//! manifest read found, over the simulated network.

use std::collections::BTreeSet;

use super::{Ev, HEDGE_MS, K, Kind, NODES, Op, Req, Sim, TIMEOUT_MS};
use crate::core::hlc::Version;
use crate::core::ops::{HedgedRead, ReadCommand, ReadOutcome};

impl Sim {
    /// Reads the data of `version`: k shards by the hedged read, data shards first.
    pub(super) fn start_data(
        &mut self,
        client: Option<u64>,
        key: u64,
        version: Version,
    ) -> Result<(), String> {
        let op = self.next_op;
        self.next_op += 1;
        let read = HedgedRead::new(K, (0..NODES).collect(), HEDGE_MS);
        let started = self.now;
        self.ops.insert(
            op,
            Op {
                client,
                kind: Kind::Data {
                    key,
                    version,
                    read,
                    started,
                    good: BTreeSet::new(),
                },
                answered: BTreeSet::new(),
            },
        );
        self.drive_data(op)
    }

    /// Carries out a data read's commands, arms its hedge deadline, and ends it once decided:
    /// the shards it settles on must be whole copies of the version, and it must end within
    /// the time its hedging allows (each of the n shards asked at most once, one more every
    /// hedge delay, each answered or timed out within the timeout): a read never stalls.
    pub(super) fn drive_data(&mut self, op: u64) -> Result<(), String> {
        let Some(Op {
            kind: Kind::Data {
                key, version, read, ..
            },
            ..
        }) = self.ops.get_mut(&op)
        else {
            return Ok(());
        };
        let (key, version) = (*key, *version);
        let commands = read.poll_commands(self.now);
        let deadline = read.poll_deadline();
        for ReadCommand::Fetch(i) in commands {
            // Shards past the first k are asked for by a hedge (or after a bad answer).
            self.f.hedged += u64::from(i >= K);
            self.send(Ev::ToNode {
                node: i,
                op,
                req: Req::Fetch(key, version),
            });
            self.at(TIMEOUT_MS, Ev::Timeout { node: i, op });
        }
        if let Some(d) = deadline {
            self.at(d.saturating_sub(self.now), Ev::Hedge { op });
        }
        let Some(Op {
            client,
            kind:
                Kind::Data {
                    read,
                    started,
                    good,
                    ..
                },
            ..
        }) = self.ops.get(&op)
        else {
            return Ok(());
        };
        let (client, started, good) = (*client, *started, good.clone());
        let outcome = read.outcome();
        if outcome == ReadOutcome::Pending {
            return Ok(());
        }
        let bound = started + (NODES - K) as u64 * HEDGE_MS + TIMEOUT_MS;
        if self.now > bound {
            return Err(self.fail(format!(
                "key {key}: a data read started at {started} ms ended at {} ms, past {bound} ms",
                self.now
            )));
        }
        match outcome {
            ReadOutcome::Ready(chosen) => {
                if let Some(&n) = chosen.iter().find(|n| !good.contains(n)) {
                    return Err(self.fail(format!(
                        "key {key}: a data read of {version:?} took node {n}'s shard, which \
                         did not answer whole"
                    )));
                }
                self.f.data_ok += 1;
            }
            _ => {
                if good.len() >= K {
                    return Err(self.fail(format!(
                        "key {key}: a data read of {version:?} gave up with {} whole shards",
                        good.len()
                    )));
                }
                self.f.data_failed += 1;
            }
        }
        self.ops.remove(&op);
        self.next_client_op(client);
        Ok(())
    }
}
