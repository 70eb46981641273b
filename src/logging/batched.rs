//! The log's writer: lines are gathered in memory and written to stderr by one thread, a batch
//! at a time. A runtime thread never blocks on a slow stderr, and a busy server pays for one
//! wake-up and one write per batch rather than per line (tracing-appender's writer wakes its
//! thread, and spins before it sleeps, for every line: a third of the system calls of a
//! streamed answer, `chatapi-bench floor`).

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer lets lines gather once one has arrived: what a line may be late by.
const GATHER: Duration = Duration::from_millis(10);

/// The most bytes held for writing; past it lines are dropped and counted, not queued without
/// end (a stderr nobody reads must not grow the server's memory).
const MAX_PENDING: usize = 1 << 20;

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    dropped: u64,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    arrived: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves whole lines behind: still worth writing.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Hands lines to the writer thread; what `tracing_subscriber` writes each event through.
#[derive(Clone)]
pub struct Batched(Arc<Shared>);

/// Flushes what is left and stops the writer thread when dropped: hold it for the whole run.
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread over `out`.
pub fn writer(out: impl Write + Send + 'static) -> (Batched, Guard) {
    let shared = Arc::new(Shared::default());
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn({
            let shared = shared.clone();
            move || write_batches(&shared, out)
        })
        .ok();
    (Batched(shared.clone()), Guard { shared, thread })
}

fn write_batches(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::new();
    loop {
        let mut pending = shared.lock();
        while pending.bytes.is_empty() && !pending.closed {
            pending = shared
                .arrived
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if !pending.closed {
            drop(pending);
            std::thread::sleep(GATHER);
            pending = shared.lock();
        }
        std::mem::swap(&mut batch, &mut pending.bytes);
        let dropped = std::mem::take(&mut pending.dropped);
        let closed = pending.closed;
        drop(pending);
        if dropped > 0 {
            let _ = writeln!(
                out,
                "chatapi: {dropped} log lines dropped: the log output did not keep up"
            );
        }
        // Nowhere to report a failing stderr; the lines are lost either way.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if closed && shared.lock().bytes.is_empty() {
            return;
        }
    }
}

impl Write for Batched {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut pending = self.0.lock();
        if pending.closed || pending.bytes.len() + line.len() > MAX_PENDING {
            pending.dropped += 1;
            return Ok(line.len());
        }
        let first = pending.bytes.is_empty();
        pending.bytes.extend_from_slice(line);
        drop(pending);
        // Only the line that finds the batch empty wakes the writer: the others join it.
        if first {
            self.0.arrived.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Batched {
    type Writer = Batched;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.arrived.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `out` the test can read after the writer is done.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<u8>>>);

    impl Write for Seen {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order_by_the_time_the_guard_is_dropped() {
        let seen = Seen::default();
        let (writer, guard) = writer(seen.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        w.write_all(format!("{t} {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(seen.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 2_000);
        for t in 0..4 {
            let mine: Vec<_> = text
                .lines()
                .filter(|l| l.starts_with(&format!("{t} ")))
                .map(|l| l.split(' ').nth(1).unwrap().parse::<u32>().unwrap())
                .collect();
            assert_eq!(
                mine,
                (0..500).collect::<Vec<_>>(),
                "thread {t}'s lines in order"
            );
        }
    }

    #[test]
    fn an_unread_output_drops_lines_and_says_how_many() {
        /// An `out` that blocks until the test lets it go, as a full pipe does.
        struct Stuck(Arc<(Mutex<bool>, Condvar)>, Seen);
        impl Write for Stuck {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let (open, cv) = &*self.0;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = cv.wait(open).unwrap();
                }
                self.1.write(buf)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let seen = Seen::default();
        let (mut writer, guard) = writer(Stuck(gate.clone(), seen.clone()));
        let line = [b'x'; 1023];
        // Far more than MAX_PENDING while the output is stuck: memory stays bounded.
        for _ in 0..(4 * MAX_PENDING / 1024) {
            writer.write_all(&line).unwrap();
            assert!(writer.0.lock().bytes.len() <= MAX_PENDING);
        }
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        drop(guard);
        let text = String::from_utf8(seen.0.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains("log lines dropped: the log output did not keep up"),
            "the drop is reported"
        );
    }
}
