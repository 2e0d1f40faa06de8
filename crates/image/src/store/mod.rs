//! The content store (filled in by the store work).
