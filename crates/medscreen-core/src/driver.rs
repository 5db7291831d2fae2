//! The ordered parallel driver every input path runs on: units of work are produced in order, processed
//! in parallel, and their results handed to one writer in the order they were produced.
//!
//! Three kinds of thread share the work. The calling thread runs the producer, which cuts its input into
//! units (native records: chunks of records; FHIR: a Bundle, a line of Bundles, a slice of a Bulk
//! export's patients); a rayon pool of `threads` workers processes each unit; one writer thread puts the
//! results back in production order and writes them. A fixed number of tokens bounds what is in flight,
//! so memory does not grow with the input: the producer waits for a token before it fills a unit, and
//! the writer hands the token back once the unit's result is written. A token is a value of the
//! caller's choosing (the native path's are its buffers, so large allocations are made once per run and
//! reused); `()` when there is nothing to reuse. Output does not depend on the thread count, since a
//! unit's result depends only on the unit and the writer sees results in one order.
//!
//! The driver has no notion of errors: a producer that must stop early (the output is gone, an input
//! cannot be listed) just returns, and whatever it produced before is still processed and written.

use std::collections::BTreeMap;
use std::sync::mpsc;

/// Tokens in flight per worker thread (plus two): enough to keep every worker busy while the writer
/// catches up, few enough that memory stays bounded.
const IN_FLIGHT_PER_THREAD: usize = 2;

/// The producer's side: take a token for the next unit, then send the unit.
pub struct Feed<'f, T, U> {
    tokens: &'f mpsc::Receiver<T>,
    send: &'f mut dyn FnMut(u64, U),
    seq: u64,
}

impl<T: Default, U> Feed<'_, T, U> {
    /// A token for the next unit; waits while the maximum number of units is in flight.
    pub fn token(&mut self) -> T {
        // The writer hands back a token for every unit it receives, until every unit sent is written,
        // so this cannot wait forever; it fails only when the writer is gone, and then a fresh token
        // lets the producer finish (nothing more will be written anyway).
        self.tokens.recv().unwrap_or_default()
    }

    /// Hand `unit` (filled into a token from [`Feed::token`]) to the workers.
    pub fn send(&mut self, unit: U) {
        let seq = self.seq;
        self.seq += 1;
        (self.send)(seq, unit);
    }

    /// Take a token and send `unit` at once, for units that carry no reusable token.
    pub fn push(&mut self, unit: U) {
        let _ = self.token();
        self.send(unit);
    }
}

/// Run `produce` on this thread, `work` on each unit it sends (on `threads` workers), and `write` on
/// each result in the order the units were sent; `write` returns the unit's token for reuse. Returns
/// once every unit sent is written.
pub fn run<T, U, R, W>(
    threads: usize,
    produce: impl FnOnce(&mut Feed<'_, T, U>),
    work: impl Fn(U) -> R + Sync,
    mut write: W,
) where
    T: Default + Send,
    U: Send,
    R: Send,
    W: FnMut(R) -> T + Send,
{
    let threads = threads.max(1);
    let in_flight = threads * IN_FLIGHT_PER_THREAD + 2;
    let (token_tx, token_rx) = mpsc::sync_channel::<T>(in_flight);
    for _ in 0..in_flight {
        let _ = token_tx.send(T::default());
    }
    let (done_tx, done_rx) = mpsc::channel::<(u64, R)>();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
    let work = &work;
    std::thread::scope(|ts| {
        let writer = ts.spawn(move || {
            let mut pending: BTreeMap<u64, R> = BTreeMap::new();
            let mut next = 0;
            for (seq, result) in done_rx {
                pending.insert(seq, result);
                while let Some(result) = pending.remove(&next) {
                    next += 1;
                    let _ = token_tx.send(write(result));
                }
            }
        });
        let feed_with = |send: &mut dyn FnMut(u64, U)| {
            produce(&mut Feed {
                tokens: &token_rx,
                send,
                seq: 0,
            });
        };
        match &pool {
            Ok(pool) => pool.in_place_scope(|scope| {
                feed_with(&mut |seq, unit| {
                    let tx = done_tx.clone();
                    scope.spawn(move |_| {
                        let _ = tx.send((seq, work(unit)));
                    });
                });
            }),
            // No thread pool (thread creation refused): work on this thread, same output.
            Err(_) => feed_with(&mut |seq, unit| {
                let _ = done_tx.send((seq, work(unit)));
            }),
        }
        drop(done_tx);
        if let Err(panic) = writer.join() {
            std::panic::resume_unwind(panic);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_written_in_the_order_units_were_sent_at_any_thread_count() {
        for threads in [1, 2, 7] {
            let mut out = Vec::new();
            run(
                threads,
                |feed: &mut Feed<'_, (), u64>| {
                    for n in 0..500u64 {
                        feed.push(n);
                    }
                },
                // Later units often finish first, so the writer must reorder.
                |n| {
                    std::thread::sleep(std::time::Duration::from_micros((500 - n) % 7 * 50));
                    n * 3
                },
                |r| out.push(r),
            );
            assert_eq!(
                out,
                (0..500).map(|n| n * 3).collect::<Vec<_>>(),
                "{threads} threads"
            );
        }
    }
}
