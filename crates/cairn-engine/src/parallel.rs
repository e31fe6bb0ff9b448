//! Work spread over every core: copying and hashing many files. Large
//! jobs are taken first, largest first, so one huge file does not leave a
//! core idle at the end. The small ones are cut into one run per worker,
//! in the input's order: a worker meets a directory's files one after
//! another and holds the directory open ([`crate::dirfd::ParentCache`]),
//! and two workers are rarely in one directory at once (creating a file
//! locks its directory). A worker done with its run helps with the
//! others'. Results come back in the input's order.

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
    for_each_largest_first(
        items,
        size,
        || (),
        |(), i, item| {
            let result = work(item);
            if let Ok(mut slot) = slots[i].lock() {
                *slot = Some(result);
            }
        },
    );
    // Every index was taken by exactly one worker, and a worker that panics
    // propagates out of `scope`, so every slot is filled.
    slots
        .into_iter()
        .filter_map(|slot| slot.into_inner().ok().flatten())
        .collect()
}

/// `work` on every item, keeping only the `Some` results, in the input's
/// order. For checks over a whole tree where almost every item yields
/// nothing: memory follows the results, not one slot per item. Each
/// worker keeps state of its own from one item to the next (`init` makes
/// it): the directories it has open.
pub fn filter_map_largest_first<T, S, R, F>(
    items: &[T],
    size: impl Fn(&T) -> u64,
    init: impl Fn() -> S + Sync,
    work: F,
) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&mut S, &T) -> Option<R> + Sync,
{
    let found: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::new());
    for_each_largest_first(items, size, init, |state, i, item| {
        if let Some(result) = work(state, item) {
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

/// From this size on, a job is large: taken before every small one,
/// largest first. Below it, the order a worker meets a directory's files
/// in counts for more than balance: the longest a core can sit idle at
/// the end is one small job.
const LARGE_JOB: u64 = 1 << 20;

/// The order jobs are taken in: indexes of the large ones, largest
/// first, then the small ones in the input's order.
fn job_order<T>(items: &[T], size: impl Fn(&T) -> u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    // Stable: the small jobs, all keyed alike, keep the input's order.
    order.sort_by_key(|&i| match size(&items[i]) {
        n if n >= LARGE_JOB => std::cmp::Reverse(n),
        _ => std::cmp::Reverse(0),
    });
    order
}

fn for_each_largest_first<T, S, F>(
    items: &[T],
    size: impl Fn(&T) -> u64,
    init: impl Fn() -> S + Sync,
    work: F,
) where
    T: Sync,
    F: Fn(&mut S, usize, &T) + Sync,
{
    let order = job_order(items, &size);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(items.len());
    let runs = Runs::new(&order, |&i| size(&items[i]) >= LARGE_JOB, workers);
    std::thread::scope(|scope| {
        for worker in 0..workers {
            let runs = &runs;
            let (order, init, work) = (&order, &init, &work);
            scope.spawn(move || {
                let mut state = init();
                while let Some(i) = runs.next(worker) {
                    let job = order[i];
                    work(&mut state, job, &items[job]);
                }
            });
        }
    });
}

/// Positions in the job order, dealt out: first the large jobs to
/// whichever worker asks, then each worker its own run of the small ones,
/// then, its run done, what is left of the others'.
struct Runs {
    large: Cursor,
    small: Vec<Cursor>,
}

/// The next position of `[.., end)` to hand out.
struct Cursor {
    next: AtomicUsize,
    end: usize,
}

impl Cursor {
    fn new(start: usize, end: usize) -> Self {
        Cursor {
            next: AtomicUsize::new(start),
            end,
        }
    }

    fn take(&self) -> Option<usize> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        (i < self.end).then_some(i)
    }
}

impl Runs {
    /// `order` begins with the jobs `is_large` says are.
    fn new<J>(order: &[J], is_large: impl Fn(&J) -> bool, workers: usize) -> Self {
        let large = order.iter().take_while(|j| is_large(j)).count();
        let small = order.len() - large;
        let workers = workers.max(1);
        let bound = |w: usize| large + small * w / workers;
        Runs {
            large: Cursor::new(0, large),
            small: (0..workers)
                .map(|w| Cursor::new(bound(w), bound(w + 1)))
                .collect(),
        }
    }

    fn next(&self, worker: usize) -> Option<usize> {
        let n = self.small.len();
        self.large
            .take()
            .or_else(|| (0..n).find_map(|k| self.small[(worker + k) % n].take()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn large_jobs_first_then_small_ones_in_input_order() {
        const MIB: u64 = 1 << 20;
        let sizes = [10, 3 * MIB, 7, MIB, 5 * MIB, 0, MIB - 1];
        assert_eq!(super::job_order(&sizes, |&s| s), [4, 1, 3, 0, 2, 5, 6]);
    }

    #[test]
    fn every_position_is_dealt_once_large_ones_first_then_each_workers_run() {
        // Two large jobs, then ten small ones.
        let order: Vec<u64> = vec![9, 8, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1];
        let runs = super::Runs::new(&order, |&s| s > 5, 2);
        assert_eq!(runs.next(1), Some(0));
        assert_eq!(runs.next(0), Some(1));
        // Worker 1's run is the second half of the small ones.
        assert_eq!(runs.next(1), Some(7));
        assert_eq!(runs.next(0), Some(2));
        let mut rest = Vec::new();
        while let Some(i) = runs.next(1) {
            rest.push(i);
        }
        // Done with its own run, worker 1 takes what is left of worker 0's.
        assert_eq!(rest, [8, 9, 10, 11, 3, 4, 5, 6]);
        assert_eq!(runs.next(0), None);
    }

    #[test]
    fn each_worker_keeps_its_own_state() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let items: Vec<u64> = (0..1000).collect();
        let workers = AtomicUsize::new(0);
        // (worker, how many items that worker had taken, this one included)
        let seen = super::filter_map_largest_first(
            &items,
            |_| 1,
            || (workers.fetch_add(1, Ordering::Relaxed), 0usize),
            |(worker, taken), _| {
                *taken += 1;
                Some((*worker, *taken))
            },
        );
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let made = workers.load(Ordering::Relaxed);
        assert!(
            (1..=cores).contains(&made),
            "{made} states for {cores} cores"
        );
        // One state per worker, kept from item to item: each worker's
        // counts run 1, 2, 3, … and together cover every item once.
        for worker in 0..made {
            let mut counts: Vec<usize> = seen
                .iter()
                .filter(|(w, _)| *w == worker)
                .map(|(_, n)| *n)
                .collect();
            counts.sort_unstable();
            assert_eq!(counts, (1..=counts.len()).collect::<Vec<_>>());
        }
        assert_eq!(seen.len(), items.len());
    }

    #[test]
    fn keeps_input_order_whatever_the_schedule() {
        let items: Vec<u64> = (0..100).map(|i| (i * 37) % 101).collect();
        let out = super::map_largest_first(&items, |&x| x, |&x| x * 2);
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert!(super::map_largest_first(&[] as &[u64], |&x| x, |&x| x).is_empty());
        let tripled = super::each_on_its_own_thread(vec![1, 2, 3], |x| x * 3, |_| 0);
        assert_eq!(tripled, [3, 6, 9]);
        let odd = super::filter_map_largest_first(
            &items,
            |&x| x,
            || (),
            |(), &x| (x % 2 == 1).then_some(x),
        );
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
