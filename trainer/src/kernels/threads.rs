//! Per-rank worker threads for the kernels.
//!
//! Each rank owns one [`Threads`] value: either nothing (one thread: every
//! kernel runs on the caller's thread) or a dedicated rayon pool. Kernels never
//! touch rayon's global pool, so several ranks in one process do not share, or
//! deadlock on, one set of workers (docs/crates.md §5), and `kernels.threads`
//! divided among the ranks bounds the total number of busy cores.

use std::sync::Arc;

use rayon::prelude::*;

/// Why a thread pool could not be built.
#[derive(Debug, thiserror::Error)]
#[error("kernels.threads = {requested}: cannot start the kernel thread pool: {reason}")]
pub struct ThreadsError {
    /// Threads asked for.
    pub requested: usize,
    /// What the operating system or rayon said.
    pub reason: String,
}

/// The worker threads one rank's kernels may use.
#[derive(Clone, Debug)]
pub struct Threads {
    pool: Option<Arc<rayon::ThreadPool>>,
    count: usize,
}

impl Default for Threads {
    fn default() -> Self {
        Self::single()
    }
}

impl Threads {
    /// Runs every kernel on the calling thread.
    pub fn single() -> Self {
        Threads {
            pool: None,
            count: 1,
        }
    }

    /// `count` worker threads (`0` = all cores of the machine). One thread
    /// builds no pool at all.
    pub fn new(count: usize) -> Result<Self, ThreadsError> {
        let count = if count == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            count
        };
        if count == 1 {
            return Ok(Self::single());
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(count)
            .thread_name(|i| format!("cptrain-kernel-{i}"))
            .build()
            .map_err(|e| ThreadsError {
                requested: count,
                reason: e.to_string(),
            })?;
        Ok(Threads {
            pool: Some(Arc::new(pool)),
            count,
        })
    }

    /// Number of threads kernels run on.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Runs `f` on one of this rank's worker threads and returns its result.
    ///
    /// Kernels called from inside `f` then split their work from a worker
    /// that takes a share itself, instead of handing every call from an
    /// outside thread to the pool and sleeping until it is done: one thread
    /// wake-up fewer per parallel kernel.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            None => f(),
            Some(pool) => pool.install(f),
        }
    }

    /// Calls `f(i)` for every `i` in `0..count`, in parallel on this rank's
    /// pool.
    pub fn for_each_index<F>(&self, count: usize, f: F)
    where
        F: Fn(usize) + Sync + Send,
    {
        match &self.pool {
            None => (0..count).for_each(f),
            Some(pool) => pool.install(|| (0..count).into_par_iter().for_each(f)),
        }
    }

    /// Calls `f(i, chunk)` for consecutive `chunk_len`-element chunks of
    /// `data` (the last may be shorter), in parallel on this rank's pool.
    pub fn for_each_chunk<T, F>(&self, data: &mut [T], chunk_len: usize, f: F)
    where
        T: Send,
        F: Fn(usize, &mut [T]) + Sync + Send,
    {
        let chunk_len = chunk_len.max(1);
        match &self.pool {
            None => data
                .chunks_mut(chunk_len)
                .enumerate()
                .for_each(|(i, c)| f(i, c)),
            Some(pool) => pool.install(|| {
                data.par_chunks_mut(chunk_len)
                    .enumerate()
                    .for_each(|(i, c)| f(i, c))
            }),
        }
    }

    /// Like [`Threads::for_each_chunk`] over two buffers chunked in step:
    /// chunk `i` of `a` (`a_len` elements) goes with chunk `i` of `b`.
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
        match &self.pool {
            None => a
                .chunks_mut(a_len)
                .zip(b.chunks_mut(b_len))
                .enumerate()
                .for_each(|(i, (x, y))| f(i, x, y)),
            Some(pool) => pool.install(|| {
                a.par_chunks_mut(a_len)
                    .zip(b.par_chunks_mut(b_len))
                    .enumerate()
                    .for_each(|(i, (x, y))| f(i, x, y))
            }),
        }
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
        match &self.pool {
            None => a
                .chunks_mut(a_len)
                .zip(b.chunks_mut(b_len))
                .zip(c.chunks_mut(c_len))
                .enumerate()
                .for_each(|(i, ((x, y), z))| f(i, x, y, z)),
            Some(pool) => pool.install(|| {
                a.par_chunks_mut(a_len)
                    .zip(b.par_chunks_mut(b_len))
                    .zip(c.par_chunks_mut(c_len))
                    .enumerate()
                    .for_each(|(i, ((x, y), z))| f(i, x, y, z))
            }),
        }
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
