//! The bounded window of recently seen message ids that every reader
//! counts duplicates with (workers, consumers, the bridge). A message's id
//! is its idempotency key (`source:symbol:trade_id`), so an id seen twice
//! is the same trade delivered twice.
//!
//! The window is checked once per message: each id is stored once, as an
//! `Arc<str>` shared by the set and the eviction order, and hashed with
//! `rustc-hash`.

use rustc_hash::FxHashSet;
use std::collections::VecDeque;
use std::sync::Arc;

/// The last `cap` distinct ids seen, oldest evicted first.
#[derive(Debug)]
pub struct DedupWindow {
    cap: usize,
    set: FxHashSet<Arc<str>>,
    order: VecDeque<Arc<str>>,
}

impl DedupWindow {
    /// Remembers at most `cap` ids; 0 turns duplicate counting off.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            set: FxHashSet::default(),
            order: VecDeque::new(),
        }
    }

    /// Records `id`; `true` when it was already in the window.
    pub fn seen(&mut self, id: &str) -> bool {
        if self.cap == 0 {
            return false;
        }
        if self.set.contains(id) {
            return true;
        }
        if self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        let id: Arc<str> = id.into();
        self.set.insert(id.clone());
        self.order.push_back(id);
        false
    }

    /// Ids held now.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// `true` before the first id.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_oldest_first_and_off_at_zero() {
        let mut w = DedupWindow::new(2);
        assert!(!w.seen("a"));
        assert!(!w.seen("b"));
        assert!(w.seen("a"));
        assert!(!w.seen("c")); // evicts a
        assert!(!w.seen("a")); // forgotten, so new again; evicts b
        assert!(w.seen("c"));
        assert_eq!(w.len(), 2);
        let mut off = DedupWindow::new(0);
        assert!(!off.seen("a") && !off.seen("a"));
        assert!(off.is_empty());
    }
}
