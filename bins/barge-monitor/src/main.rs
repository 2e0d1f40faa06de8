//! barge-monitor: one per container (see barge_engine::monitor).

fn main() {
    std::process::exit(barge_engine::monitor::main());
}
