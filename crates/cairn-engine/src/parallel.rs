//! Work spread over every core: copying and hashing many files. Jobs are
//! taken largest first, so one huge file does not leave a core idle at the
//! end; results come back in the input's order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

pub fn map_largest_first<T, R, F>(items: &[T], size: impl Fn(&T) -> u64, work: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(size(&items[i])));
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(items.len());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&job) = order.get(i) else { break };
                let result = work(&items[job]);
                if let Ok(mut slot) = slots[job].lock() {
                    *slot = Some(result);
                }
            });
        }
    });
    // Every index was taken by exactly one worker, and a worker that panics
    // propagates out of `scope`, so every slot is filled.
    slots
        .into_iter()
        .filter_map(|slot| slot.into_inner().ok().flatten())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_input_order_whatever_the_schedule() {
        let items: Vec<u64> = (0..100).map(|i| (i * 37) % 101).collect();
        let out = super::map_largest_first(&items, |&x| x, |&x| x * 2);
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert!(super::map_largest_first(&[] as &[u64], |&x| x, |&x| x).is_empty());
    }
}
