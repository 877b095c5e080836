//! Keeping f32 values as bf16 and reading them back: what
//! [`Kernels::round_to_bf16`](super::Kernels::round_to_bf16) and
//! [`Kernels::widen_bf16`](super::Kernels::widen_bf16) do on the CPU, two
//! values to a word (see [`Bf16Buffer`](crate::device::Bf16Buffer)).
//!
//! The rounding is the one the CPU's bf16 products apply to their operands
//! (`vcvtne2ps2bf16`), so a value kept in bf16 and widened again is, bit for
//! bit, what a product would have read from the f32 value.

/// The bf16 bits `x` rounds to as the CPU's bf16 instructions round:
/// nearest, ties to even; a subnormal input becomes a zero of its sign
/// (the instructions treat subnormal inputs as zero); a NaN stays a NaN of
/// the same sign, made quiet.
pub fn bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x0040) as u16;
    }
    if bits & 0x7f80_0000 == 0 {
        return ((bits >> 16) & 0x8000) as u16;
    }
    // Adding just under half a unit of the kept bits, plus the kept bits'
    // lowest one, rounds to nearest with ties to even; a carry into the
    // exponent is the correct result (up to infinity).
    let round = 0x7fff + ((bits >> 16) & 1);
    ((bits + round) >> 16) as u16
}

/// `words[i]` = the bf16 bits of `x[2i]` in its low half and of `x[2i + 1]`
/// (zero past an odd length) in its high half.
pub fn round_to_bf16(x: &[f32], words: &mut [u32]) {
    assert_eq!(words.len(), x.len().div_ceil(2), "words for another length");
    for (word, pair) in words.iter_mut().zip(x.chunks(2)) {
        let high = pair.get(1).map_or(0, |&v| bf16_bits(v));
        *word = u32::from(bf16_bits(pair[0])) | u32::from(high) << 16;
    }
}

/// `out[i]` = value `i` of `words` (laid out as [`round_to_bf16`] writes
/// them), exactly: a bf16 value is an f32 with its low 16 bits zero.
pub fn widen_bf16(words: &[u32], out: &mut [f32]) {
    assert_eq!(
        words.len(),
        out.len().div_ceil(2),
        "words for another length"
    );
    let mut pairs = out.chunks_exact_mut(2);
    for (pair, &word) in (&mut pairs).zip(words) {
        pair[0] = f32::from_bits(word << 16);
        pair[1] = f32::from_bits(word & 0xffff_0000);
    }
    if let [last] = pairs.into_remainder() {
        *last = f32::from_bits(words[words.len() - 1] << 16);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::gemm_bf16::Bf16Gemm;

    /// Values that exercise every branch: ties either way, the largest
    /// finite values (which round to infinity), subnormals, zeros, NaN.
    fn edge_values() -> Vec<f32> {
        let mut v = vec![
            0.0,
            -0.0,
            1.0,
            -1.5,
            f32::from_bits(0x3f80_8000), // a tie, kept bits even: down
            f32::from_bits(0x3f81_8000), // a tie, kept bits odd: up
            f32::from_bits(0x3f80_8001), // just above a tie: up
            f32::from_bits(0x3f80_7fff), // just below a tie: down
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::from_bits(0x0000_0001), // smallest subnormal
            f32::from_bits(0x807f_ffff), // largest negative subnormal
            f32::MIN_POSITIVE,
            f32::NAN,
            f32::from_bits(0xff80_0001), // a signalling NaN
        ];
        v.extend((0..1000).map(|i| ((i as f32) * 0.618_034).sin() * 10f32.powi(i % 9 - 4)));
        v
    }

    #[test]
    fn rounding_is_nearest_even_with_subnormal_inputs_as_zero() {
        assert_eq!(bf16_bits(1.0), 0x3f80);
        assert_eq!(bf16_bits(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(bf16_bits(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(bf16_bits(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(bf16_bits(f32::from_bits(0x3f80_7fff)), 0x3f80);
        assert_eq!(bf16_bits(f32::MAX), 0x7f80, "rounds up to infinity");
        assert_eq!(bf16_bits(f32::from_bits(0x807f_ffff)), 0x8000);
        assert_eq!(bf16_bits(f32::from_bits(0xff80_0001)), 0xffc0);
        // Away from the special cases it is the IEEE rounding `half` does.
        for x in edge_values().into_iter().filter(|x| x.is_normal()) {
            assert_eq!(bf16_bits(x), half::bf16::from_f32(x).to_bits(), "{x:e}");
        }
    }

    #[test]
    fn widening_what_was_rounded_gives_the_rounded_values() {
        for len in [0, 1, 2, 7, 1017] {
            let x: Vec<f32> = edge_values().into_iter().cycle().take(len).collect();
            let mut words = vec![0u32; len.div_ceil(2)];
            round_to_bf16(&x, &mut words);
            let mut back = vec![f32::NAN; len];
            widen_bf16(&words, &mut back);
            for (&b, &v) in back.iter().zip(&x) {
                let want = f32::from_bits(u32::from(bf16_bits(v)) << 16);
                assert_eq!(b.to_bits(), want.to_bits(), "{v:e}");
            }
            if len % 2 == 1 {
                assert_eq!(words[len / 2] >> 16, 0, "the padding half is zero");
            }
        }
    }

    /// The vector rounding the products use agrees with this one bit for
    /// bit, so kept operands are exactly what the products read.
    #[test]
    fn the_products_rounding_is_this_rounding() {
        let Ok(gemm) = Bf16Gemm::new() else {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        };
        for len in [1, 31, 32, 33, 1017] {
            let x: Vec<f32> = edge_values().into_iter().cycle().take(len).collect();
            let (mut want, mut got) = (vec![0; len.div_ceil(2)], vec![0; len.div_ceil(2)]);
            round_to_bf16(&x, &mut want);
            gemm.round(&x, &mut got);
            assert_eq!(got, want, "len {len}");
        }
    }
}
