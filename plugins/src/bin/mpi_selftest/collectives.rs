//! Every collective against values computed by hand. Inputs are small
//! integers, so sums are exact in any order of summation and results can be
//! compared with `==`.

use cptrain::parallel::{ProcessGroup, RankError, ReduceOp};

use crate::ensure;

pub fn check_all(g: &dyn ProcessGroup) -> Result<(), RankError> {
    all_reduce_sum(g)?;
    all_reduce_max(g)?;
    all_gather(g)?;
    reduce_scatter(g)?;
    all_to_all(g)?;
    broadcast(g)?;
    g.barrier()?;
    Ok(())
}

/// Sum over ranks q of `3q + i % 5`: `3·p(p-1)/2 + p·(i % 5)`.
fn all_reduce_sum(g: &dyn ProcessGroup) -> Result<(), RankError> {
    let (p, r) = (g.size(), g.rank());
    for n in [0, 1, 7, 1 << 20] {
        let mut buf: Vec<f32> = (0..n).map(|i| (3 * r + i % 5) as f32).collect();
        g.all_reduce(&mut buf, ReduceOp::Sum)?;
        let expected = |i: usize| (3 * p * (p - 1) / 2 + p * (i % 5)) as f32;
        let wrong = buf.iter().enumerate().find(|&(i, &x)| x != expected(i));
        ensure(wrong.is_none(), || {
            format!("all_reduce sum of {n}: element {wrong:?} differs")
        })?;
    }
    let mut scalars = [r as f64 + 0.5, 1.0];
    g.all_reduce_f64(&mut scalars, ReduceOp::Sum)?;
    let expected = [(p * (p - 1)) as f64 / 2.0 + 0.5 * p as f64, p as f64];
    ensure(scalars == expected, || {
        format!("all_reduce_f64 sum gave {scalars:?}, expected {expected:?}")
    })
}

/// The maximum, with a NaN on the last rank winning at index 1.
fn all_reduce_max(g: &dyn ProcessGroup) -> Result<(), RankError> {
    let (p, r) = (g.size(), g.rank());
    let nan_here = r == p - 1;
    let mut buf = [r as f32, if nan_here { f32::NAN } else { 0.0 }, -(r as f32)];
    g.all_reduce(&mut buf, ReduceOp::Max)?;
    let ok = buf[0] == (p - 1) as f32 && buf[1].is_nan() && buf[2] == 0.0;
    ensure(ok, || format!("all_reduce max gave {buf:?}"))?;
    let mut wide = [r as f64 * 2.0, if nan_here { f64::NAN } else { 1.0 }];
    g.all_reduce_f64(&mut wide, ReduceOp::Max)?;
    let ok = wide[0] == 2.0 * (p - 1) as f64 && wide[1].is_nan();
    ensure(ok, || format!("all_reduce_f64 max gave {wide:?}"))
}

/// Rank q contributes `[10q, 10q + 1]`.
fn all_gather(g: &dyn ProcessGroup) -> Result<(), RankError> {
    let (p, r) = (g.size(), g.rank());
    let send = [10.0 * r as f32, 10.0 * r as f32 + 1.0];
    let mut recv = vec![0.0f32; 2 * p];
    g.all_gather(&send, &mut recv)?;
    let expected: Vec<f32> = (0..p)
        .flat_map(|q| [10.0 * q as f32, 10.0 * q as f32 + 1.0])
        .collect();
    ensure(recv == expected, || format!("all_gather gave {recv:?}"))
}

/// Block j of rank q is `q + 100j` (3 elements): rank r gets
/// `p(p-1)/2 + 100·p·r` under Sum and `p - 1 + 100r` under Max.
fn reduce_scatter(g: &dyn ProcessGroup) -> Result<(), RankError> {
    let (p, r) = (g.size(), g.rank());
    let send: Vec<f32> = (0..p).flat_map(|j| [(r + 100 * j) as f32; 3]).collect();
    let mut recv = [0.0f32; 3];
    g.reduce_scatter(&send, &mut recv, ReduceOp::Sum)?;
    let sum = (p * (p - 1) / 2 + 100 * p * r) as f32;
    ensure(recv == [sum; 3], || {
        format!("reduce_scatter sum gave {recv:?}, expected {sum}")
    })?;
    g.reduce_scatter(&send, &mut recv, ReduceOp::Max)?;
    let max = (p - 1 + 100 * r) as f32;
    ensure(recv == [max; 3], || {
        format!("reduce_scatter max gave {recv:?}, expected {max}")
    })
}

/// Block j of rank q is `100q + j`: rank r receives `100i + r` from rank i.
fn all_to_all(g: &dyn ProcessGroup) -> Result<(), RankError> {
    let (p, r) = (g.size(), g.rank());
    let send: Vec<f32> = (0..p).flat_map(|j| [(100 * r + j) as f32; 2]).collect();
    let mut recv = vec![0.0f32; send.len()];
    g.all_to_all(&send, &mut recv)?;
    let expected: Vec<f32> = (0..p).flat_map(|i| [(100 * i + r) as f32; 2]).collect();
    ensure(recv == expected, || format!("all_to_all gave {recv:?}"))
}

/// The last rank's buffer reaches everyone.
fn broadcast(g: &dyn ProcessGroup) -> Result<(), RankError> {
    let (p, r) = (g.size(), g.rank());
    let root = p - 1;
    let mut buf = if r == root {
        vec![1.0f32, 2.0, 3.0]
    } else {
        vec![0.0; 3]
    };
    g.broadcast(&mut buf, root)?;
    ensure(buf == [1.0, 2.0, 3.0], || format!("broadcast gave {buf:?}"))
}
