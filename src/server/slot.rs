//! A share of a counted limit, given back when dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `amount` taken from `counter`; dropping it gives the amount back.
#[derive(Debug)]
pub struct Slot {
    counter: Arc<AtomicUsize>,
    amount: usize,
}

impl Slot {
    /// Takes `amount` from `counter` if that keeps it within `limit`.
    pub fn take(counter: &Arc<AtomicUsize>, amount: usize, limit: usize) -> Option<Self> {
        Self::take_if(counter, amount, |_, after| after <= limit)
    }

    /// As [`Slot::take`], but the first taker (nothing held) is always
    /// admitted: one response larger than a whole byte budget still goes
    /// out, alone.
    pub fn take_or_first(counter: &Arc<AtomicUsize>, amount: usize, limit: usize) -> Option<Self> {
        Self::take_if(counter, amount, |held, after| held == 0 || after <= limit)
    }

    fn take_if(
        counter: &Arc<AtomicUsize>,
        amount: usize,
        admit: impl Fn(usize, usize) -> bool,
    ) -> Option<Self> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                let after = held.checked_add(amount)?;
                admit(held, after).then_some(after)
            })
            .ok()
            .map(|_| Self {
                counter: counter.clone(),
                amount,
            })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.amount, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_given_back_when_dropped() {
        let counter = Arc::new(AtomicUsize::new(0));
        let first = Slot::take(&counter, 2, 3).unwrap();
        assert!(Slot::take(&counter, 2, 3).is_none());
        let second = Slot::take(&counter, 1, 3).unwrap();
        assert_eq!(counter.load(Ordering::Acquire), 3);
        drop(first);
        assert_eq!(counter.load(Ordering::Acquire), 1);
        drop(second);
        assert_eq!(counter.load(Ordering::Acquire), 0);
    }

    #[test]
    fn the_first_taker_may_exceed_a_byte_budget_alone() {
        let counter = Arc::new(AtomicUsize::new(0));
        let large = Slot::take_or_first(&counter, 10, 4).unwrap();
        assert!(Slot::take_or_first(&counter, 1, 4).is_none());
        drop(large);
        let small = Slot::take_or_first(&counter, 3, 4).unwrap();
        assert!(Slot::take_or_first(&counter, 2, 4).is_none());
        assert!(Slot::take_or_first(&counter, 1, 4).is_some());
        drop(small);
        assert_eq!(counter.load(Ordering::Acquire), 0);
    }
}
