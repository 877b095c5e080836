//! Residual connections.

/// `out = a + b` elementwise.
pub fn residual_add(a: &[f32], b: &[f32], out: &mut [f32]) {
    assert_eq!(a.len(), b.len());
    assert_eq!(a.len(), out.len());
    for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
        *o = a + b;
    }
}

/// `acc += x` elementwise.
pub fn add_assign(acc: &mut [f32], x: &[f32]) {
    assert_eq!(acc.len(), x.len());
    acc.iter_mut().zip(x).for_each(|(a, &b)| *a += b);
}
