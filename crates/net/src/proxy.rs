//! The userspace proxy for published ports (being written).
