//! A producer writing a stream on one thread while a consumer reads it on
//! this one, through a pipe (no temporary file, nothing held in memory).
//!
//! The reader reports the end of the stream only if the producer
//! succeeded, so a consumer never takes a stream cut short by a failed
//! producer for a whole one; errors are reported from where they started.
//! Writing to a pipe whose reader is gone gives `EPIPE`: this relies on
//! `SIGPIPE` being ignored, as Rust programs do by default.

use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use crate::error::{EngineError, Result};

/// The read end handed to the consumer.
pub(super) struct PipeReader<'a> {
    file: File,
    done: &'a mpsc::Receiver<bool>,
    ended: Option<bool>,
    producer_failed: &'a AtomicBool,
}

impl Read for PipeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        let ok = *self
            .ended
            .get_or_insert_with(|| self.done.recv().unwrap_or(false));
        if ok {
            Ok(0)
        } else {
            self.producer_failed.store(true, Ordering::Relaxed);
            Err(io::Error::other("the stream was cut short"))
        }
    }
}

/// Run `produce` on a thread writing into a pipe and `consume` here
/// reading from it.
pub(super) fn through_pipe<T>(
    produce: impl FnOnce(&mut File) -> Result<()> + Send,
    consume: impl FnOnce(&mut PipeReader<'_>) -> Result<T>,
) -> Result<T> {
    let (r, w) = rustix::pipe::pipe().map_err(|e| EngineError::Io {
        what: "create",
        path: "a pipe".into(),
        source: e.into(),
    })?;
    let (tx, rx) = mpsc::channel();
    let producer_failed = AtomicBool::new(false);
    std::thread::scope(|s| {
        let producer = s.spawn(move || {
            let mut w = File::from(w);
            let res = produce(&mut w);
            let _ = tx.send(res.is_ok());
            drop(w);
            res
        });
        let consumed = {
            let mut reader = PipeReader {
                file: File::from(r),
                done: &rx,
                ended: None,
                producer_failed: &producer_failed,
            };
            let out = consume(&mut reader);
            // Read what the consumer left (a tar's end blocks) so that the
            // producer finishes and its outcome is known.
            match out {
                Ok(t) => io::copy(&mut reader, &mut io::sink())
                    .map(|_| t)
                    .map_err(|e| EngineError::Io {
                        what: "read",
                        path: "the end of the stream".into(),
                        source: e,
                    }),
                Err(e) => Err(e),
            }
            // The read end closes here: a producer still writing gets EPIPE.
        };
        let produced = producer.join().unwrap_or_else(|_| {
            Err(EngineError::Io {
                what: "write",
                path: "the stream".into(),
                source: io::Error::other("the writer thread panicked"),
            })
        });
        match (consumed, produced) {
            (Ok(t), Ok(())) => Ok(t),
            (Ok(_), Err(e)) => Err(e),
            (Err(c), Err(p)) if producer_failed.load(Ordering::Relaxed) => {
                drop(c);
                Err(p)
            }
            (Err(c), _) => Err(c),
        }
    })
}
