//! (being written)

/// Entry point of the `barge-monitor` binary; returns its exit code.
pub fn main() -> i32 {
    1
}
