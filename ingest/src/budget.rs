//! One memory budget for the whole process (`[limits] max_memory`), which every input and
//! every SMTP message in transit reserves from before it takes memory.
//!
//! A reservation is an estimate made before the work, from what bounds it: the size of an
//! input read whole (and what unpacking may hold for it, see `unpack`), a fixed allowance for
//! an input streamed (its buffers are bounded, whatever its size), the bytes of a message as
//! they arrive. Beyond the budget, work waits for reservations to be released (`import`, the
//! IMAP pollers), or is refused for now (`serve` answers `451`). A single reservation larger
//! than the whole budget is cut to the budget: such work runs alone.
//!
//! Reservations are counted in KiB on a semaphore; they are given back when dropped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The most memory the process is to use for inputs in flight.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    /// The whole budget, in KiB.
    total: u32,
}

/// Memory reserved from a [`MemoryBudget`], given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: Option<OwnedSemaphorePermit>,
    kib: u32,
}

impl Reservation {
    /// A reservation of nothing (for work outside any budget).
    pub fn none() -> Reservation {
        Reservation { _permit: None, kib: 0 }
    }

    /// Bytes reserved.
    pub fn bytes(&self) -> u64 {
        u64::from(self.kib) << 10
    }

    /// Adds `more` to this reservation.
    pub fn merge(&mut self, more: Reservation) {
        match (&mut self._permit, more._permit) {
            (Some(permit), Some(more)) => permit.merge(more),
            (slot @ None, more) => *slot = more,
            (Some(_), None) => {}
        }
        self.kib += more.kib;
    }
}

impl MemoryBudget {
    /// A budget of `bytes` (at least 1 MiB).
    pub fn new(bytes: u64) -> MemoryBudget {
        let total = u32::try_from(bytes >> 10).unwrap_or(u32::MAX >> 3).clamp(1024, Semaphore::MAX_PERMITS as u32);
        MemoryBudget { permits: Arc::new(Semaphore::new(total as usize)), total }
    }

    /// The whole budget in bytes.
    pub fn total(&self) -> u64 {
        u64::from(self.total) << 10
    }

    /// Memory free at this moment, in bytes.
    pub fn available(&self) -> u64 {
        (self.permits.available_permits() as u64) << 10
    }

    /// KiB to reserve for `bytes`: rounded up, at least one, at most the whole budget.
    fn kib(&self, bytes: u64) -> u32 {
        u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX).clamp(1, self.total)
    }

    /// Reserves `bytes`, waiting as long as it takes.
    pub async fn reserve(&self, bytes: u64) -> Reservation {
        let kib = self.kib(bytes);
        match self.permits.clone().acquire_many_owned(kib).await {
            Ok(permit) => Reservation { _permit: Some(permit), kib },
            // The semaphore is never closed.
            Err(_) => Reservation::none(),
        }
    }

    /// Reserves `bytes`, waiting at most `patience`; `None` when the budget stayed too full.
    pub async fn reserve_within(&self, bytes: u64, patience: Duration) -> Option<Reservation> {
        tokio::time::timeout(patience, self.reserve(bytes)).await.ok()
    }

    /// Reserves `bytes` now, or `None` when the budget is too full.
    pub fn try_reserve(&self, bytes: u64) -> Option<Reservation> {
        let kib = self.kib(bytes);
        self.permits.clone().try_acquire_many_owned(kib).ok().map(|permit| Reservation { _permit: Some(permit), kib })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_are_given_back_when_dropped() {
        let budget = MemoryBudget::new(4 << 20);
        let first = budget.reserve(3 << 20).await;
        assert_eq!(first.bytes(), 3 << 20);
        assert!(budget.try_reserve(2 << 20).is_none(), "over the budget");
        assert!(budget.reserve_within(2 << 20, Duration::from_millis(10)).await.is_none());
        drop(first);
        assert!(budget.try_reserve(2 << 20).is_some());
    }

    #[tokio::test]
    async fn more_than_the_whole_budget_is_cut_to_it_and_runs_alone() {
        let budget = MemoryBudget::new(4 << 20);
        let all = budget.reserve(1 << 40).await;
        assert_eq!(all.bytes(), 4 << 20);
        assert_eq!(budget.available(), 0);
        drop(all);
        assert_eq!(budget.available(), 4 << 20);
    }

    #[tokio::test]
    async fn reservations_merge() {
        let budget = MemoryBudget::new(4 << 20);
        let mut held = budget.reserve(1 << 20).await;
        held.merge(budget.reserve(1 << 20).await);
        assert_eq!(held.bytes(), 2 << 20);
        assert_eq!(budget.available(), 2 << 20);
        drop(held);
        assert_eq!(budget.available(), 4 << 20);
    }
}
