//! Debug logging for `--debug`: one line per step on stderr with the time
//! since the command started, so slow steps of a container start show up.
//! Off by default; when off a call costs one relaxed atomic load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

static ENABLED: AtomicBool = AtomicBool::new(false);
static START: OnceLock<Instant> = OnceLock::new();

pub fn enable() {
    START.get_or_init(Instant::now);
    ENABLED.store(true, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Print a debug line (use the [`debug!`](crate::debug) macro).
pub fn write(args: std::fmt::Arguments) {
    let t = START.get_or_init(Instant::now).elapsed();
    eprintln!(
        "debug[{:>5}] {:>8.3}ms {args}",
        std::process::id(),
        t.as_secs_f64() * 1000.0
    );
}

#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => {
        if $crate::log::enabled() {
            $crate::log::write(format_args!($($t)*));
        }
    };
}
