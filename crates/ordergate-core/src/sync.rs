//! The loom switch: one place that picks std or loom synchronization types.
//!
//! `ring` and `doorbell` import their atomics, `Arc` and `UnsafeCell` from
//! here, so the very same code is model-checked by `tests/loom.rs` when the
//! cargo feature `loom` is on. The feature is a crate feature rather than
//! `--cfg loom` so that dependencies such as tokio are not switched too.

pub(crate) use std::sync::atomic::Ordering;

#[cfg(feature = "loom")]
pub(crate) use loom::{
    cell::UnsafeCell,
    sync::{
        atomic::{fence, AtomicBool, AtomicUsize},
        Arc,
    },
};

#[cfg(not(feature = "loom"))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicBool, AtomicUsize},
    Arc,
};

/// A `std::cell::UnsafeCell` with loom's closure-based access API.
///
/// loom can only see cell accesses made through `with`/`with_mut`, so the
/// std build offers the same two methods (which compile down to a plain
/// pointer) and the ring code needs no `cfg` of its own.
#[cfg(not(feature = "loom"))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(feature = "loom"))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Hands out a shared pointer; the caller promises no concurrent writer.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Hands out a unique pointer; the caller promises exclusive access.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
