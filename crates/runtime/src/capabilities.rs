//! The five capability sets of `process.capabilities`.
//!
//! Order matters and is the caller's: the bounding set is reduced while the
//! process still has CAP_SETPCAP, the other sets are set after the switch to
//! the container's user (which, with PR_SET_KEEPCAPS, keeps the permitted set).

use caps::{CapSet, Capability as Cap, CapsHashSet};
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use crate::error::{Result, RuntimeError};

fn convert(c: &Capability) -> Result<Cap> {
    let name = format!("CAP_{c}");
    name.parse::<Cap>()
        .map_err(|_| RuntimeError::Config(format!("unknown capability \"{name}\"")))
}

fn set_of(s: Option<&Capabilities>) -> Result<CapsHashSet> {
    s.map(|s| s.iter().map(convert).collect())
        .unwrap_or_else(|| Ok(CapsHashSet::new()))
}

/// Check that every name maps to a capability this build knows.
pub fn validate(c: &LinuxCapabilities) -> Result<()> {
    for s in [
        c.bounding(),
        c.effective(),
        c.inheritable(),
        c.permitted(),
        c.ambient(),
    ] {
        set_of(s.as_ref())?;
    }
    Ok(())
}

fn caps_err(what: &str, e: caps::errors::CapsError) -> RuntimeError {
    RuntimeError::Other(format!("{what}: {e}"))
}

/// Drop every capability outside `bounding` from the bounding set.
pub fn drop_bounding(c: &LinuxCapabilities) -> Result<()> {
    let keep = set_of(c.bounding().as_ref())?;
    let current =
        caps::read(None, CapSet::Bounding).map_err(|e| caps_err("read bounding set", e))?;
    for cap in current.difference(&keep) {
        caps::drop(None, CapSet::Bounding, *cap)
            .map_err(|e| caps_err(&format!("drop {cap} from the bounding set"), e))?;
    }
    Ok(())
}

/// Set the effective, inheritable, permitted and ambient sets.
pub fn apply(c: &LinuxCapabilities) -> Result<()> {
    let eff = set_of(c.effective().as_ref())?;
    let inh = set_of(c.inheritable().as_ref())?;
    let perm = set_of(c.permitted().as_ref())?;
    let amb = set_of(c.ambient().as_ref())?;
    // Inheritable and effective first, while the permitted set is still wide.
    caps::set(None, CapSet::Inheritable, &inh)
        .map_err(|e| caps_err("set inheritable capabilities", e))?;
    let cur_perm =
        caps::read(None, CapSet::Permitted).map_err(|e| caps_err("read permitted set", e))?;
    let eff_now: CapsHashSet = eff.intersection(&cur_perm).copied().collect();
    caps::set(None, CapSet::Effective, &eff_now)
        .map_err(|e| caps_err("set effective capabilities", e))?;
    caps::set(None, CapSet::Permitted, &perm)
        .map_err(|e| caps_err("set permitted capabilities", e))?;
    if eff_now.len() != eff.len() || !eff.is_subset(&perm) {
        // The kernel never lets effective exceed permitted; runc reports the same.
        caps::set(None, CapSet::Effective, &eff).map_err(|e| {
            caps_err(
                "set effective capabilities (must be a subset of permitted)",
                e,
            )
        })?;
    }
    // Like runc, an ambient capability the kernel refuses (it must also be
    // permitted and inheritable) is skipped rather than failing the start.
    let _ = caps::clear(None, CapSet::Ambient);
    for cap in &amb {
        let _ = caps::raise(None, CapSet::Ambient, *cap);
    }
    Ok(())
}
