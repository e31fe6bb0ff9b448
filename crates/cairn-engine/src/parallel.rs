//! Work spread over every core: copying and hashing many files. Jobs are
//! taken largest first, so one huge file does not leave a core idle at the
//! end; results come back in the input's order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// `work` on every item, results in the input's order.
pub fn map_largest_first<T, R, F>(items: &[T], size: impl Fn(&T) -> u64, work: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    for_each_largest_first(items, size, |i, item| {
        let result = work(item);
        if let Ok(mut slot) = slots[i].lock() {
            *slot = Some(result);
        }
    });
    // Every index was taken by exactly one worker, and a worker that panics
    // propagates out of `scope`, so every slot is filled.
    slots
        .into_iter()
        .filter_map(|slot| slot.into_inner().ok().flatten())
        .collect()
}

/// `work` on every item, keeping only the `Some` results, in the input's
/// order. For checks over a whole tree where almost every item yields
/// nothing: memory follows the results, not one slot per item.
pub fn filter_map_largest_first<T, R, F>(items: &[T], size: impl Fn(&T) -> u64, work: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> Option<R> + Sync,
{
    let found: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::new());
    for_each_largest_first(items, size, |i, item| {
        if let Some(result) = work(item) {
            if let Ok(mut found) = found.lock() {
                found.push((i, result));
            }
        }
    });
    let mut found = found.into_inner().unwrap_or_default();
    found.sort_by_key(|(i, _)| *i);
    found.into_iter().map(|(_, r)| r).collect()
}

/// `work` on each item, each on a thread of its own, results in the
/// items' order: for a handful of long jobs that use a core or more each
/// (the stores of one snapshot, restore or drill). A job that panics
/// yields `panicked(its index)` instead of bringing the others down.
pub fn each_on_its_own_thread<T, R>(
    items: Vec<T>,
    work: impl Fn(T) -> R + Sync,
    panicked: impl Fn(usize) -> R,
) -> Vec<R>
where
    T: Send,
    R: Send,
{
    std::thread::scope(|scope| {
        let work = &work;
        let running: Vec<_> = items
            .into_iter()
            .map(|item| scope.spawn(move || work(item)))
            .collect();
        running
            .into_iter()
            .enumerate()
            .map(|(i, thread)| thread.join().unwrap_or_else(|_| panicked(i)))
            .collect()
    })
}

fn for_each_largest_first<T, F>(items: &[T], size: impl Fn(&T) -> u64, work: F)
where
    T: Sync,
    F: Fn(usize, &T) + Sync,
{
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(size(&items[i])));
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
                work(job, &items[job]);
            });
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_input_order_whatever_the_schedule() {
        let items: Vec<u64> = (0..100).map(|i| (i * 37) % 101).collect();
        let out = super::map_largest_first(&items, |&x| x, |&x| x * 2);
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert!(super::map_largest_first(&[] as &[u64], |&x| x, |&x| x).is_empty());
        let tripled = super::each_on_its_own_thread(vec![1, 2, 3], |x| x * 3, |_| 0);
        assert_eq!(tripled, [3, 6, 9]);
        let odd = super::filter_map_largest_first(&items, |&x| x, |&x| (x % 2 == 1).then_some(x));
        assert_eq!(
            odd,
            items
                .iter()
                .copied()
                .filter(|x| x % 2 == 1)
                .collect::<Vec<_>>()
        );
    }
}
