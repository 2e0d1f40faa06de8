//! placeholder, filled in by the cgroups work
