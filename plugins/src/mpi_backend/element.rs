//! The element types reductions accept, and the encoding that makes
//! `ReduceOp::Max` propagate NaN (MPI_MAX keeps or drops a NaN depending on
//! the order in which the library combines values).

use mpi::ffi;

/// f32 or f64.
pub(super) trait Element: Copy + Default + Send + 'static {
    /// The MPI datatype.
    fn datatype() -> ffi::MPI_Datatype;
    fn is_nan(self) -> bool;
    const NAN: Self;
    const NEG_INFINITY: Self;
    const ONE: Self;
    /// True for a flag set by [`max_encode`].
    fn is_set(self) -> bool;
}

impl Element for f32 {
    fn datatype() -> ffi::MPI_Datatype {
        // SAFETY: reading a constant exported by the MPI shim.
        unsafe { ffi::RSMPI_FLOAT }
    }
    fn is_nan(self) -> bool {
        self.is_nan()
    }
    const NAN: Self = f32::NAN;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    const ONE: Self = 1.0;
    fn is_set(self) -> bool {
        self > 0.0
    }
}

impl Element for f64 {
    fn datatype() -> ffi::MPI_Datatype {
        // SAFETY: reading a constant exported by the MPI shim.
        unsafe { ffi::RSMPI_DOUBLE }
    }
    fn is_nan(self) -> bool {
        self.is_nan()
    }
    const NAN: Self = f64::NAN;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    const ONE: Self = 1.0;
    fn is_set(self) -> bool {
        self > 0.0
    }
}

/// Each block of `block` values becomes `2·block`: the values with NaN
/// replaced by -∞ (so it never wins the max), then one flag per value that
/// is 1 where the value was NaN.
pub(super) fn max_encode<T: Element>(values: &[T], block: usize) -> Vec<T> {
    let mut encoded = Vec::with_capacity(2 * values.len());
    for chunk in values.chunks(block.max(1)) {
        encoded.extend(
            chunk
                .iter()
                .map(|&v| if v.is_nan() { T::NEG_INFINITY } else { v }),
        );
        encoded.extend(
            chunk
                .iter()
                .map(|&v| if v.is_nan() { T::ONE } else { T::default() }),
        );
    }
    encoded
}

/// Inverse of [`max_encode`] for one reduced block: NaN where any rank had one.
pub(super) fn max_decode<T: Element>(reduced: &[T], out: &mut [T]) {
    let (values, flags) = reduced.split_at(out.len());
    for ((o, &v), &flag) in out.iter_mut().zip(values).zip(flags) {
        *o = if flag.is_set() { T::NAN } else { v };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encoding then decoding one rank's blocks is the identity, NaN included.
    #[test]
    fn max_encoding_round_trips_each_block() {
        let values = [1.0f32, f32::NAN, -3.0, 4.0];
        let encoded = max_encode(&values, 2);
        assert_eq!(encoded.len(), 8);
        for (b, block) in values.chunks(2).enumerate() {
            let mut out = [0.0f32; 2];
            max_decode(&encoded[4 * b..4 * (b + 1)], &mut out);
            for (o, v) in out.iter().zip(block) {
                assert!(o == v || (o.is_nan() && v.is_nan()), "{o} vs {v}");
            }
        }
    }
}
