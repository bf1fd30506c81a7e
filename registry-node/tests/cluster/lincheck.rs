//! Linearizability checker for histories of independent registers (KV keys).
//!
//! Wing & Gong's search with Lowe's memoization, as Porcupine implements it:
//! the calls and returns of one key's ops sit in time order in a doubly
//! linked list; the search linearizes the first call the model accepts,
//! lifts its call and return out of the list and starts over; reaching a
//! return means that op should already have taken effect, so it backtracks.
//! A (linearized set, state) pair seen before cannot lead anywhere new, which
//! is what keeps the search small. Keys are checked one by one: a history is
//! linearizable iff every key's sub-history is (P-compositionality).
//!
//! An op whose call failed (error, timeout) has an unknown outcome: it never
//! returns (return time +∞), so it may take effect at any point after its
//! call, or not at all.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// A register's value: the ID of the write that stored it (IDs are unique
/// per history); `None` = the key is absent.
pub type Value = Option<u64>;

/// One operation on one register, with what it observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A read that returned `got`.
    Read { got: Value },
    /// A blind write of `value`.
    Write { value: u64 },
    /// Compare-and-set: store `new` if the register holds `expect`;
    /// `swapped` is the answer (ignored when the outcome is unknown).
    Cas {
        expect: Value,
        new: u64,
        swapped: bool,
    },
}

/// One client call in a history. Times are from one monotonic clock.
#[derive(Clone, Debug)]
pub struct Record {
    /// Who called (for reports only).
    pub client: usize,
    /// The register.
    pub key: String,
    /// What was done and seen.
    pub op: Op,
    /// Invocation time, in ns.
    pub call: u64,
    /// Return time, in ns; `None` = unknown outcome (error, timeout).
    pub ret: Option<u64>,
}

/// A key whose sub-history has no linearization, explained by the point
/// where the longest partial linearization got stuck.
#[derive(Debug)]
pub struct Anomaly {
    /// The key.
    pub key: String,
    /// Length of the longest linearizable prefix found.
    pub prefix_len: usize,
    /// Its last ops, in linearization order.
    pub prefix_tail: Vec<Record>,
    /// The register's value after that prefix.
    pub state: Value,
    /// The op that had returned, yet could not be linearized next.
    pub stuck: Record,
    /// The ops overlapping the time from the write of the value `stuck`
    /// refers to until `stuck` returned (only the writes if there are many;
    /// at most the last [`WINDOW`]).
    pub window: Vec<Record>,
    /// Ops of the window left out of `window`.
    pub elided: usize,
    /// The writes of the values `stuck` and `state` refer to.
    pub writers: Vec<Record>,
}

/// Checks every key of `history`; returns the anomaly of each failing key.
pub fn check(history: &[Record]) -> Result<(), Vec<Anomaly>> {
    let mut keys: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in history {
        keys.entry(&r.key).or_default().push(r);
    }
    let anomalies: Vec<Anomaly> = keys
        .into_iter()
        .filter_map(|(key, ops)| check_key(key, &ops).err().map(|a| *a))
        .collect();
    if anomalies.is_empty() {
        Ok(())
    } else {
        Err(anomalies)
    }
}

/// The register model: the state after `op` from `state`, or `None` if `op`
/// cannot have happened there. `known` = the op returned.
fn step(state: Value, op: &Op, known: bool) -> Option<Value> {
    match *op {
        Op::Read { got } => (state == got).then_some(state),
        Op::Write { value } => Some(Some(value)),
        // Unknown outcome: if it took effect it swapped exactly when it matched.
        Op::Cas { expect, new, .. } if !known => {
            Some(if state == expect { Some(new) } else { state })
        }
        Op::Cas {
            expect,
            new,
            swapped: true,
        } => (state == expect).then_some(Some(new)),
        Op::Cas {
            expect,
            swapped: false,
            ..
        } => (state != expect).then_some(state),
    }
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// Events of one key in time order, in a list whose nodes can be lifted out
/// and put back in reverse order (dancing links).
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Node → (is a return, op).
    node: Vec<(bool, usize)>,
    call_node: Vec<usize>,
    ret_node: Vec<Option<usize>>,
}

impl Events {
    fn new(ops: &[&Record]) -> Events {
        // Calls before returns at equal times: touching ops count as concurrent.
        let mut ev: Vec<(u64, bool, usize)> = Vec::new();
        for (i, r) in ops.iter().enumerate() {
            ev.push((r.call, false, i));
            if let Some(ret) = r.ret {
                ev.push((ret.max(r.call), true, i));
            }
        }
        ev.sort_unstable();
        let len = ev.len() + 1;
        let mut e = Events {
            next: (1..=len).map(|n| if n == len { NIL } else { n }).collect(),
            prev: (0..len).map(|n| n.wrapping_sub(1)).collect(),
            node: vec![(false, NIL); len],
            call_node: vec![NIL; ops.len()],
            ret_node: vec![None; ops.len()],
        };
        for (n, (_, is_ret, i)) in ev.into_iter().enumerate() {
            e.node[n + 1] = (is_ret, i);
            if is_ret {
                e.ret_node[i] = Some(n + 1);
            } else {
                e.call_node[i] = n + 1;
            }
        }
        e
    }

    fn unlink(&mut self, n: usize) {
        let (p, x) = (self.prev[n], self.next[n]);
        self.next[p] = x;
        if x != NIL {
            self.prev[x] = p;
        }
    }

    fn relink(&mut self, n: usize) {
        let (p, x) = (self.prev[n], self.next[n]);
        self.next[p] = n;
        if x != NIL {
            self.prev[x] = n;
        }
    }

    fn lift(&mut self, i: usize) {
        self.unlink(self.call_node[i]);
        if let Some(r) = self.ret_node[i] {
            self.unlink(r);
        }
    }

    fn unlift(&mut self, i: usize) {
        if let Some(r) = self.ret_node[i] {
            self.relink(r);
        }
        self.relink(self.call_node[i]);
    }
}

/// Searches one key's sub-history for a linearization.
fn check_key(key: &str, all: &[&Record]) -> Result<(), Box<Anomaly>> {
    // A read that failed observed nothing.
    let ops: Vec<&Record> = all
        .iter()
        .copied()
        .filter(|r| r.ret.is_some() || !matches!(r.op, Op::Read { .. }))
        .collect();
    let mut ev = Events::new(&ops);
    let mut linearized = vec![0u64; ops.len().div_ceil(64)];
    let mut seen: HashSet<(Vec<u64>, Value)> = HashSet::new();
    // Linearized ops in order, with the state before each.
    let mut stack: Vec<(usize, Value)> = Vec::new();
    let mut state: Value = None;
    // Ops that returned and are not linearized yet: done when none is left.
    let mut owed = ops.iter().filter(|r| r.ret.is_some()).count();
    let mut best: Option<(Vec<usize>, Value, usize)> = None;
    let mut cur = ev.next[HEAD];
    while owed > 0 {
        let (is_ret, i) = ev.node[cur];
        if !is_ret {
            if let Some(after) = step(state, &ops[i].op, ops[i].ret.is_some()) {
                linearized[i / 64] |= 1 << (i % 64);
                if seen.insert((linearized.clone(), after)) {
                    stack.push((i, state));
                    state = after;
                    ev.lift(i);
                    owed -= usize::from(ops[i].ret.is_some());
                    cur = ev.next[HEAD];
                    continue;
                }
                linearized[i / 64] &= !(1 << (i % 64));
            }
            cur = ev.next[cur];
            continue;
        }
        // Op `i` returned before anything the model accepts: backtrack.
        if best.as_ref().is_none_or(|(b, _, _)| stack.len() > b.len()) {
            best = Some((stack.iter().map(|(j, _)| *j).collect(), state, i));
        }
        let Some((j, before)) = stack.pop() else {
            let (order, state, stuck) = best.expect("a dead end was recorded");
            return Err(Box::new(explain(key, &ops, order, state, stuck)));
        };
        linearized[j / 64] &= !(1 << (j % 64));
        state = before;
        ev.unlift(j);
        owed += usize::from(ops[j].ret.is_some());
        cur = ev.next[ev.call_node[j]];
    }
    Ok(())
}

/// Most ops a report lists in its window.
const WINDOW: usize = 40;

/// Builds the report of the deepest dead end.
fn explain(key: &str, ops: &[&Record], order: Vec<usize>, state: Value, stuck: usize) -> Anomaly {
    let stuck_rec = ops[stuck].clone();
    let wanted: Vec<u64> = match stuck_rec.op {
        Op::Read { got } => got,
        Op::Cas { expect, .. } => expect,
        Op::Write { .. } => None,
    }
    .into_iter()
    .chain(state)
    .collect();
    let writes = |r: &Record| match r.op {
        Op::Write { value } | Op::Cas { new: value, .. } => Some(value),
        Op::Read { .. } => None,
    };
    let writers: Vec<Record> = ops
        .iter()
        .filter(|r| writes(r).is_some_and(|v| wanted.contains(&v)))
        .map(|r| (*r).clone())
        .collect();
    // From the write of the value in question to the stuck op's return.
    let from = writers
        .iter()
        .map(|r| r.call)
        .chain([stuck_rec.call])
        .min()
        .unwrap_or(0);
    let to = stuck_rec.ret.unwrap_or(u64::MAX);
    let mut window: Vec<Record> = ops
        .iter()
        .filter(|r| r.call <= to && r.ret.is_none_or(|ret| ret >= from))
        .map(|r| (*r).clone())
        .collect();
    if window.len() > WINDOW {
        // Long windows: keep what changed the value.
        let refused =
            |r: &Record| matches!(r.op, Op::Cas { swapped: false, .. }) && r.ret.is_some();
        let is_stuck = |r: &Record| r.call == stuck_rec.call && r.client == stuck_rec.client;
        window.retain(|r| is_stuck(r) || (writes(r).is_some() && !refused(r)));
    }
    window.sort_by_key(|r| r.call);
    let elided = window.len().saturating_sub(WINDOW);
    window.drain(..elided);
    let tail = order.len().saturating_sub(5);
    Anomaly {
        key: key.to_string(),
        prefix_len: order.len(),
        prefix_tail: order[tail..].iter().map(|i| ops[*i].clone()).collect(),
        state,
        stuck: stuck_rec,
        window,
        elided,
        writers,
    }
}

/// `v17` or `absent`.
struct V(Value);

impl fmt::Display for V {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "v{v}"),
            None => f.write_str("absent"),
        }
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |ns: u64| ns as f64 / 1e9;
        write!(f, "client {} ", self.client)?;
        match (&self.op, self.ret.is_some()) {
            (Op::Read { got }, _) => write!(f, "read -> {}", V(*got))?,
            (Op::Write { value }, true) => write!(f, "write v{value} -> ok")?,
            (Op::Write { value }, false) => write!(f, "write v{value} -> unknown")?,
            (Op::Cas { expect, new, .. }, false) => {
                write!(f, "cas {} -> v{new} -> unknown", V(*expect))?
            }
            (
                Op::Cas {
                    expect,
                    new,
                    swapped,
                },
                true,
            ) => write!(f, "cas {} -> v{new} -> {swapped}", V(*expect))?,
        }
        match self.ret {
            Some(ret) => write!(f, "  [{:.6}s, {:.6}s]", secs(self.call), secs(ret)),
            None => write!(f, "  [{:.6}s, never]", secs(self.call)),
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "key {:?} is not linearizable.", self.key)?;
        writeln!(
            f,
            "  longest linearizable prefix: {} ops, ending with:",
            self.prefix_len
        )?;
        for r in &self.prefix_tail {
            writeln!(f, "    {r}")?;
        }
        writeln!(f, "  value then: {}", V(self.state))?;
        writeln!(
            f,
            "  stuck: no order lets this op take effect before it returned:"
        )?;
        writeln!(f, "    {}", self.stuck)?;
        writeln!(
            f,
            "  window (ops overlapping the write of its value .. its return):"
        )?;
        if self.elided > 0 {
            writeln!(f, "    ... {} earlier writes", self.elided)?;
        }
        for r in &self.window {
            let mark = if r.call == self.stuck.call && r.client == self.stuck.client {
                "  <- stuck"
            } else {
                ""
            };
            writeln!(f, "    {r}{mark}")?;
        }
        writeln!(f, "  writes of the values involved:")?;
        for r in &self.writers {
            writeln!(f, "    {r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    const MS: u64 = 1_000_000;

    /// An op on key `k` by client 0 from `call` ms to `ret` ms (`None` = unknown).
    fn op(op: Op, call: u64, ret: Option<u64>) -> Record {
        Record {
            client: 0,
            key: "k".into(),
            op,
            call: call * MS,
            ret: ret.map(|r| r * MS),
        }
    }

    fn w(value: u64, call: u64, ret: u64) -> Record {
        op(Op::Write { value }, call, Some(ret))
    }

    fn r(got: Value, call: u64, ret: u64) -> Record {
        op(Op::Read { got }, call, Some(ret))
    }

    fn cas(expect: Value, new: u64, swapped: bool, call: u64, ret: u64) -> Record {
        op(
            Op::Cas {
                expect,
                new,
                swapped,
            },
            call,
            Some(ret),
        )
    }

    fn fails(history: &[Record]) -> Anomaly {
        let mut a = check(history).expect_err("not linearizable");
        assert_eq!(a.len(), 1);
        eprintln!("{}", a[0]);
        a.remove(0)
    }

    #[test]
    fn linearizable_history_passes() {
        let h = [
            r(None, 0, 1),
            w(1, 2, 10),
            // Concurrent with the write: may see either value.
            r(None, 3, 4),
            r(Some(1), 5, 6),
            r(Some(1), 11, 12),
            cas(Some(1), 2, true, 13, 20),
            cas(Some(1), 3, false, 14, 21),
            r(Some(2), 22, 23),
            // Two concurrent CASes from the same value: one wins.
            cas(Some(2), 4, false, 24, 30),
            cas(Some(2), 5, true, 25, 29),
            r(Some(5), 31, 32),
        ];
        check(&h).expect("linearizable");
        check(&[]).expect("empty history");
    }

    #[test]
    fn stale_read_is_caught() {
        let h = [w(1, 0, 1), w(2, 2, 3), r(Some(1), 4, 5)];
        let a = fails(&h);
        assert_eq!(a.stuck.op, Op::Read { got: Some(1) });
        assert_eq!(a.state, Some(2));
    }

    #[test]
    fn lost_acknowledged_write_is_caught() {
        let h = [w(1, 0, 1), w(2, 2, 3), r(Some(2), 4, 5), r(Some(1), 6, 7)];
        fails(&h);
        let h = [w(1, 0, 1), r(None, 2, 3)];
        assert_eq!(fails(&h).state, Some(1));
    }

    #[test]
    fn cas_anomalies_are_caught() {
        // Two CASes from the same value both succeed, one after the other.
        fails(&[
            w(1, 0, 1),
            cas(Some(1), 2, true, 2, 3),
            cas(Some(1), 3, true, 4, 5),
        ]);
        // A CAS fails although nothing else wrote.
        fails(&[w(1, 0, 1), cas(Some(1), 2, false, 2, 3)]);
        // Create-only succeeds on a present key.
        fails(&[w(1, 0, 1), cas(None, 2, true, 2, 3)]);
        // A successful CAS whose write is then missing.
        fails(&[w(1, 0, 1), cas(Some(1), 2, true, 2, 3), r(Some(1), 4, 5)]);
    }

    #[test]
    fn unknown_outcome_may_or_may_not_take_effect() {
        let lost = op(Op::Write { value: 2 }, 2, None);
        // Never seen: fine.
        check(&[
            w(1, 0, 1),
            lost.clone(),
            r(Some(1), 3, 4),
            r(Some(1), 50, 51),
        ])
        .expect("did not happen");
        // Seen long after its call: fine.
        check(&[
            w(1, 0, 1),
            lost.clone(),
            r(Some(1), 3, 4),
            r(Some(2), 50, 51),
        ])
        .expect("happened late");
        // But it happens once: it cannot be undone, nor seen before its call.
        fails(&[w(1, 0, 1), lost.clone(), r(Some(2), 3, 4), r(Some(1), 5, 6)]);
        fails(&[w(1, 0, 1), r(Some(2), 0, 1), lost.clone()]);
        // An unknown CAS may explain a failed CAS, or a later read of its value.
        let maybe = op(
            Op::Cas {
                expect: Some(1),
                new: 3,
                swapped: false,
            },
            2,
            None,
        );
        check(&[w(1, 0, 1), maybe.clone(), cas(Some(1), 4, false, 5, 6)])
            .expect("the unknown CAS swapped");
        check(&[w(1, 0, 1), maybe.clone(), r(Some(3), 5, 6)]).expect("it swapped");
        check(&[w(1, 0, 1), maybe.clone(), r(Some(1), 5, 6)]).expect("it did not");
        // It can only swap from its expected value.
        fails(&[w(5, 0, 1), maybe, r(Some(3), 5, 6)]);
        // A failed read observed nothing.
        check(&[w(1, 0, 1), op(Op::Read { got: Some(9) }, 2, None)]).expect("dropped");
    }

    #[test]
    fn keys_are_independent_and_each_failure_is_reported() {
        let on = |key: &str, mut r: Record| {
            r.key = key.into();
            r
        };
        let h = [
            on("a", w(1, 0, 1)),
            on("b", w(2, 0, 1)),
            on("a", r(Some(1), 2, 3)),
            on("b", r(Some(2), 2, 3)),
            on("c", w(3, 0, 1)),
            on("c", r(None, 2, 3)),
        ];
        let a = check(&h).expect_err("c lost its write");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].key, "c");
        assert!(a[0].to_string().contains("client 0 read -> absent"));
    }

    /// Histories of a real atomic register under random concurrency, with
    /// lost answers, always pass: the search neither gives false alarms nor
    /// blows up on long concurrent histories.
    #[test]
    fn random_atomic_register_histories_pass() {
        for seed in 0..20 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut reg: Value = None;
            let mut history = Vec::new();
            let mut next = 0u64;
            // Each client: (op invoked at, effect at, returns at) in µs.
            for client in 0..6 {
                let mut t = rng.random_range(0..100u64);
                while t < 100_000 {
                    let effect = t + rng.random_range(1..300);
                    let ret = effect + rng.random_range(1..300);
                    history.push((effect, client, t, ret, rng.random_range(0..3u8)));
                    t = ret + rng.random_range(0..50);
                }
            }
            history.sort_unstable();
            let records: Vec<Record> = history
                .into_iter()
                .map(|(_, client, call, ret, kind)| {
                    next += 1;
                    let op = match kind {
                        0 => {
                            reg = Some(next);
                            Op::Write { value: next }
                        }
                        1 => Op::Read { got: reg },
                        _ => {
                            let expect = if rng.random_bool(0.5) {
                                reg
                            } else {
                                Some(next - 1)
                            };
                            let swapped = reg == expect;
                            if swapped {
                                reg = Some(next);
                            }
                            Op::Cas {
                                expect,
                                new: next,
                                swapped,
                            }
                        }
                    };
                    let lost = rng.random_bool(0.03);
                    Record {
                        client,
                        key: "k".into(),
                        op,
                        call: call * 1000,
                        ret: (!lost).then_some(ret * 1000),
                    }
                })
                .collect();
            assert!(records.len() > 1000);
            if let Err(a) = check(&records) {
                panic!("seed {seed}: {}", a[0]);
            }
        }
    }
}
