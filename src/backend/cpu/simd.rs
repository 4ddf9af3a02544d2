//! The instruction-set levels of the CPU backend ([`Simd`]: portable, AVX2 + FMA,
//! AVX-512, detected at run time) and the per-level copies of the draw's weight loop
//! ([`weights`]). The pass itself is dispatched in [`super::kernel`].
#![allow(unsafe_code)]

use super::kernel::weight;

/// The instruction set the hot loops run on. Every level returns bit-identical results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Simd {
    /// Baseline code of the compilation target (SSE2 on `x86_64`, where the exp's fused
    /// multiply-adds become `libm` calls: exact, but about 50× slower than AVX-512).
    Portable,
    /// AVX2 + FMA (`x86_64`, detected at run time; FMA runs the exp's specified fused
    /// multiply-adds and fuses nothing else).
    Avx2,
    /// AVX-512 F/DQ/VL/BW (`x86_64`, detected at run time).
    Avx512,
}

impl Simd {
    /// Whether this machine can run `self`.
    pub fn is_available(self) -> bool {
        match self {
            Simd::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => {
                Simd::Avx2.is_available()
                    && std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512bw")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every level this machine can run, slowest first.
    pub fn available() -> Vec<Simd> {
        [Simd::Portable, Simd::Avx2, Simd::Avx512]
            .into_iter()
            .filter(|s| s.is_available())
            .collect()
    }

    /// The fastest available level.
    pub fn best() -> Simd {
        *Simd::available().last().unwrap_or(&Simd::Portable)
    }
}

/// The weights [`weight`]`(x, m, inv_tau, temper)` of `xb` into `out[..xb.len()]`, on
/// `level` (the same bits on every level; the draw's walk over its block).
pub(crate) fn weights(
    level: Simd,
    xb: &[f32],
    m: f32,
    inv_tau: f32,
    temper: bool,
    out: &mut [f32],
) {
    match level {
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 if Simd::Avx512.is_available() => {
            // SAFETY: the target features of `weights_avx512` were checked just now.
            unsafe { weights_avx512(xb, m, inv_tau, temper, out) }
        }
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 | Simd::Avx512 if Simd::Avx2.is_available() => {
            // SAFETY: the target features of `weights_avx2` were checked just now.
            unsafe { weights_avx2(xb, m, inv_tau, temper, out) }
        }
        _ => weights_impl(xb, m, inv_tau, temper, out),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn weights_avx2(xb: &[f32], m: f32, inv_tau: f32, temper: bool, out: &mut [f32]) {
    weights_impl(xb, m, inv_tau, temper, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512dq,avx512vl,avx512bw")]
fn weights_avx512(xb: &[f32], m: f32, inv_tau: f32, temper: bool, out: &mut [f32]) {
    weights_impl(xb, m, inv_tau, temper, out)
}

#[inline(always)]
fn weights_impl(xb: &[f32], m: f32, inv_tau: f32, temper: bool, out: &mut [f32]) {
    if temper {
        for (o, &x) in out.iter_mut().zip(xb) {
            *o = weight(x, m, inv_tau, true);
        }
    } else {
        for (o, &x) in out.iter_mut().zip(xb) {
            *o = weight(x, m, inv_tau, false);
        }
    }
}
