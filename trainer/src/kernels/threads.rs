//! Per-rank worker threads for the kernels.
//!
//! Each rank owns one [`Threads`] value: either nothing (one thread: every
//! kernel runs on the caller's thread) or a [`Team`] of helper threads of its
//! own that the caller works alongside. Kernels never use a process-wide pool
//! such as rayon's, so several ranks in one process do not share, or
//! deadlock on, one set of workers, and `kernels.threads` divided among the
//! ranks bounds the total number of busy cores.

use std::sync::Arc;

use super::team::Team;

/// Why a thread pool could not be built.
#[derive(Debug, thiserror::Error)]
#[error("kernels.threads = {requested}: cannot start the kernel thread pool: {reason}")]
pub struct ThreadsError {
    /// Threads asked for.
    pub requested: usize,
    /// What the operating system said.
    pub reason: String,
}

/// The worker threads one rank's kernels may use: the calling thread plus,
/// for more than one, a team of helpers that spin briefly between jobs
/// (`kernels/team.rs`).
#[derive(Clone, Debug)]
pub struct Threads {
    team: Option<Arc<Team>>,
    count: usize,
}

impl Default for Threads {
    fn default() -> Self {
        Self::single()
    }
}

/// A raw base pointer that parallel tasks turn into disjoint sub-slices.
#[derive(Clone, Copy)]
struct SharedMut<T>(*mut T);

// SAFETY: tasks only form non-overlapping sub-slices from it (see `chunk`).
unsafe impl<T: Send> Send for SharedMut<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// Chunk `i` of `len`-element chunks of a `total`-element buffer.
    ///
    /// # Safety
    /// The buffer must be alive and borrowed for the call, and each `i` used
    /// by one task only.
    #[allow(clippy::mut_from_ref)]
    unsafe fn chunk(&self, i: usize, len: usize, total: usize) -> &mut [T] {
        let start = (i * len).min(total);
        let end = (start + len).min(total);
        // SAFETY: per the contract, `start..end` is inside the buffer and no
        // other task holds it.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), end - start) }
    }
}

/// Chunks of `len` elements (the last may be shorter) a buffer of `total`
/// elements splits into.
fn chunk_count(total: usize, len: usize) -> usize {
    total.div_ceil(len.max(1))
}

impl Threads {
    /// Runs every kernel on the calling thread.
    pub fn single() -> Self {
        Threads {
            team: None,
            count: 1,
        }
    }

    /// `count` threads (`0` = all cores of the machine): the caller and
    /// `count − 1` helpers. One thread starts no helper.
    pub fn new(count: usize) -> Result<Self, ThreadsError> {
        let count = if count == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            count
        };
        if count == 1 {
            return Ok(Self::single());
        }
        let team = Team::new(count - 1, "cptrain-kernel").map_err(|e| ThreadsError {
            requested: count,
            reason: e.to_string(),
        })?;
        Ok(Threads {
            team: Some(Arc::new(team)),
            count,
        })
    }

    /// Number of threads kernels run on.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Calls `f(i)` for every `i` in `0..count`, in parallel over this
    /// rank's threads.
    pub fn for_each_index<F>(&self, count: usize, f: F)
    where
        F: Fn(usize) + Sync + Send,
    {
        match &self.team {
            None => (0..count).for_each(f),
            Some(team) => team.run(count, &f),
        }
    }

    /// Calls `f(i, chunk)` for consecutive `chunk_len`-element chunks of
    /// `data` (the last may be shorter), in parallel over this rank's
    /// threads.
    pub fn for_each_chunk<T, F>(&self, data: &mut [T], chunk_len: usize, f: F)
    where
        T: Send,
        F: Fn(usize, &mut [T]) + Sync + Send,
    {
        let (len, total) = (chunk_len.max(1), data.len());
        let base = SharedMut(data.as_mut_ptr());
        self.for_each_index(chunk_count(total, len), |i| {
            // SAFETY: `data` is borrowed for this call; chunk `i` is task i's.
            f(i, unsafe { base.chunk(i, len, total) })
        });
    }

    /// Like [`Threads::for_each_chunk`] over two buffers chunked in step:
    /// chunk `i` of `a` (`a_len` elements) goes with chunk `i` of `b`. Runs
    /// as many tasks as the buffer with fewer chunks has.
    pub fn for_each_chunk2<A, B, F>(
        &self,
        a: &mut [A],
        a_len: usize,
        b: &mut [B],
        b_len: usize,
        f: F,
    ) where
        A: Send,
        B: Send,
        F: Fn(usize, &mut [A], &mut [B]) + Sync + Send,
    {
        let (a_len, b_len) = (a_len.max(1), b_len.max(1));
        let (a_total, b_total) = (a.len(), b.len());
        let (pa, pb) = (SharedMut(a.as_mut_ptr()), SharedMut(b.as_mut_ptr()));
        let tasks = chunk_count(a_total, a_len).min(chunk_count(b_total, b_len));
        self.for_each_index(tasks, |i| {
            // SAFETY: both buffers are borrowed for this call; chunk `i` of
            // each is task i's.
            let (x, y) = unsafe { (pa.chunk(i, a_len, a_total), pb.chunk(i, b_len, b_total)) };
            f(i, x, y)
        });
    }

    /// Like [`Threads::for_each_chunk`] over three buffers chunked in step.
    #[allow(clippy::too_many_arguments)]
    pub fn for_each_chunk3<A, B, C, F>(
        &self,
        a: &mut [A],
        a_len: usize,
        b: &mut [B],
        b_len: usize,
        c: &mut [C],
        c_len: usize,
        f: F,
    ) where
        A: Send,
        B: Send,
        C: Send,
        F: Fn(usize, &mut [A], &mut [B], &mut [C]) + Sync + Send,
    {
        let (a_len, b_len, c_len) = (a_len.max(1), b_len.max(1), c_len.max(1));
        let (a_total, b_total, c_total) = (a.len(), b.len(), c.len());
        let (pa, pb, pc) = (
            SharedMut(a.as_mut_ptr()),
            SharedMut(b.as_mut_ptr()),
            SharedMut(c.as_mut_ptr()),
        );
        let tasks = chunk_count(a_total, a_len)
            .min(chunk_count(b_total, b_len))
            .min(chunk_count(c_total, c_len));
        self.for_each_index(tasks, |i| {
            // SAFETY: the buffers are borrowed for this call; chunk `i` of
            // each is task i's.
            let (x, y, z) = unsafe {
                (
                    pa.chunk(i, a_len, a_total),
                    pb.chunk(i, b_len, b_total),
                    pc.chunk(i, c_len, c_total),
                )
            };
            f(i, x, y, z)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_buffer_once_for_any_thread_count() {
        for threads in [Threads::single(), Threads::new(3).unwrap()] {
            let mut data = vec![0usize; 1000];
            threads.for_each_chunk(&mut data, 7, |i, c| {
                for (j, x) in c.iter_mut().enumerate() {
                    *x += i * 7 + j;
                }
            });
            assert!(data.iter().enumerate().all(|(i, &x)| x == i));
        }
        assert_eq!(Threads::new(1).unwrap().count(), 1);
        assert!(Threads::new(0).unwrap().count() >= 1);
    }
}
