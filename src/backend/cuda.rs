//! The CUDA backend (feature `cuda`): [`CudaBackend`], the [`Backend`] contract on an
//! NVIDIA GPU through [`cudarc`], with kernels compiled at run time by NVRTC.
//!
//! # No GPU, no panic
//!
//! `cudarc` loads `libcuda` and `libnvrtc` at run time and panics when they are missing.
//! Every entry point here first asks whether the library is present
//! ([`driver_present`], [`nvrtc_present`]) and wraps the remaining `cudarc` calls in
//! `catch_unwind`, so a machine without CUDA (or without a device) gets an
//! [`Error::Numerical`] naming the cause — never a panic. [`device_count`] is the cheap
//! probe.
//!
//! # What runs on the device
//!
//! [`CudaBackend::summarize_device`] reads `[B, L, V]` logits that already live on the
//! device ([`DeviceLogits`], `f32` or `bf16`): only `O(B·L)` row summaries come back to the
//! host. [`CudaBackend::bind`] turns device logits into a [`Backend`] ([`BoundLogits`]), so
//! every fused step of [`crate::backend::steps`] (MDLM, LLaDA, Fast-dLLM threshold, DFM,
//! SEDD, plain sampling) runs on device-resident logits unchanged: the steps read logits
//! only through [`Backend::summarize`], and their remaining work (selection, top-k,
//! thresholds, token writes) is `O(B·L)` on the host. The [`Backend`] impl of
//! [`CudaBackend`] itself takes host logits and uploads the selected rows only.
//!
//! # The kernel: the CPU backend's arithmetic, block by block
//!
//! One CUDA thread block (8 warps) per selected row. The row is cut into the **same
//! blocks** as [`CpuBackend`](crate::backend::cpu::CpuBackend): 256 ids within each
//! allowed segment (the complement of the excluded ids). Warp `w` reads block
//! `8r + w` (8 logits per lane, coalesced), then:
//!
//! 1. block maximum (exact in any order), its first index, the block's top-2 values;
//! 2. thread 0 raises the running maximum `m` block by block, in block order, exactly as
//!    the CPU's pass does, and assigns each block the running maximum at its turn;
//! 3. the block sums `Σ exp(x − m)`, `Σ exp(x − m)(x − m)`, `Σ exp((x − m)τ⁻¹)` with the
//!    CPU's [`exp_nonpositive`](crate::backend::cpu::exp::exp_nonpositive) (same `f32`
//!    operations, its fused multiply-adds as `__fmaf_rn`; NVRTC runs with
//!    `--fmad=false --ftz=false` so that it fuses nothing else), added into **16 `f64` lanes
//!    in the CPU's order** (lane `c` adds, for `q = 0, 1, …, 7` in turn, the `f32` sum of
//!    the weights of ids `32q + c` and `32q + 16 + c`) and reduced by the CPU's pairwise
//!    tree;
//! 4. thread 0 rescales the block sums to the row maximum in block order, forms
//!    log-sum-exp, margin and entropy, and draws the token by the CPU's inverse-CDF walk:
//!    find the block from the block sums, then walk that block's weights in `f64`. The
//!    uniform is Philox-4x32-10 at the documented address, computed in the kernel
//!    ([`source::PHILOX_C`], checked against [`crate::rng::philox`] by a host C compiler).
//!
//! # Where CPU and GPU agree bit for bit
//!
//! Everything in steps 1–3 is the same sequence of IEEE `f32`/`f64` operations as on the
//! CPU, so `argmax`, `max`, the per-block sums and the uniform are **bit-identical**. The
//! only operations that are not are the `f64` `exp` and `ln` of step 4 (`exp(m_k − m)` per
//! distinct block maximum, `exp(ℓ₂ − m)` for the margin, `ln s`): Rust calls the platform
//! `libm` (glibc: < 1 ulp), the kernel CUDA's `exp`/`log` (≤ 1 ulp). Both are almost always
//! correctly rounded, and then the results are identical; when one of them is not:
//!
//! * `logsumexp`, `token_logprob`, `margin`, `entropy` differ by a few `f64` ulps;
//! * the **token** differs only if the target `u·S` lies within a few ulps (relative
//!   `~10⁻¹⁶`) of a boundary of the cumulative sum — in the walk over block sums, and only
//!   for blocks whose running maximum is not the row maximum (for those `exp(0) = 1`
//!   exactly). The probability per row is `~10⁻¹⁵`; the parity test
//!   (`tests/backend_cuda.rs`) expects zero mismatches over its rows.
//!
//! Ties in the logits never differ: the argmax is the lowest index of the maximum on both,
//! and the walk's order is fixed.
//!
//! # Limits
//!
//! The block records of a row live in shared memory: `28·⌈V/256⌉` bytes (plus 28 per
//! excluded id that splits a segment) must fit in 47 KiB, i.e. `V ≲ 439,000`; larger
//! vocabularies get an [`Error::InvalidArgument`].

#![allow(unsafe_code)]

pub mod source;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DriverError, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::{CompileOptions, Ptx};
use ndarray::{ArrayView2, ArrayView3, ArrayViewMut2, s};

use crate::backend::cpu::{BLOCK_LEN, INV_TAU_RANGE, segments};
use crate::backend::{Backend, BatchRng, RowSpec, RowSummary, check_summarize_args};
use crate::error::{Error, Result};

/// Threads per CUDA block (8 warps; the kernel's `DD_THREADS`).
const THREADS: u32 = 256;
/// Dynamic shared memory for the block records: the 48 KiB a block may use without an
/// opt-in, less 1 KiB for the kernel's static shared variables (about 200 bytes).
const SHARED_LIMIT: usize = 47 * 1024;
/// Shared bytes per CPU block record (`s`, `st`, `t` in `f64`, `m` in `f32`).
const RECORD_BYTES: usize = 3 * 8 + 4;
/// Largest grid (rows beyond it are looped over by the kernel).
const MAX_GRID: usize = 1 << 20;

/// Kernel status codes (`DD_OK`, `DD_NON_FINITE`, `DD_NO_MASS`).
const STATUS_OK: u32 = 0;
const STATUS_NON_FINITE: u32 = 1;

fn numerical(what: &'static str, reason: impl Into<String>) -> Error {
    Error::Numerical {
        what,
        reason: reason.into(),
    }
}

fn driver(what: &'static str) -> impl Fn(DriverError) -> Error {
    move |e| numerical(what, format!("{e:?}"))
}

/// Runs a `cudarc` call, turning a panic (a missing library symbol) into an error.
fn guarded<T>(what: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic in cudarc".to_string());
            Err(numerical(what, msg))
        }
    }
}

/// Whether the CUDA driver library (`libcuda`) can be loaded on this machine.
pub fn driver_present() -> bool {
    // SAFETY: `is_culib_present` only tries `dlopen` on the library's candidate names and
    // drops the handle; loading libcuda runs no user-visible initialisation.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Whether the NVRTC library (`libnvrtc`) can be loaded on this machine.
pub fn nvrtc_present() -> bool {
    // SAFETY: as in `driver_present`: a `dlopen` probe of libnvrtc.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// The number of CUDA devices.
///
/// # Errors
/// [`Error::Numerical`] when the driver library is absent or the driver fails
/// (`CUDA_ERROR_NO_DEVICE` on a machine with a driver but no GPU). Never panics.
pub fn device_count() -> Result<usize> {
    if !driver_present() {
        return Err(numerical(
            "cuda::device_count",
            "the CUDA driver library (libcuda) is not present on this machine",
        ));
    }
    guarded("cuda::device_count", || {
        let n = CudaContext::device_count().map_err(driver("cuda::device_count"))?;
        Ok(n.max(0) as usize)
    })
}

/// The NVRTC options the kernels need: IEEE `f32` arithmetic exactly as written (no
/// multiply-add contraction beyond the source's explicit `__fmaf_rn`, no flush-to-zero,
/// IEEE division and square root), so that the kernel repeats the CPU backend's operations
/// bit for bit.
pub fn nvrtc_options() -> CompileOptions {
    CompileOptions {
        ftz: Some(false),
        prec_sqrt: Some(true),
        prec_div: Some(true),
        fmad: Some(false),
        use_fast_math: Some(false),
        name: Some("discrete_diffusion_cuda.cu".to_string()),
        ..CompileOptions::default()
    }
}

/// Compiles [`source::kernel_source`] to PTX with NVRTC (no GPU needed, only
/// `libnvrtc`). `arch` is an NVRTC `--gpu-architecture` value (e.g. `"compute_90"`;
/// `None`: NVRTC's default).
///
/// # Errors
/// [`Error::Numerical`] when `libnvrtc` is absent or the source does not compile (the
/// message carries NVRTC's log).
pub fn compile_ptx(arch: Option<&'static str>) -> Result<String> {
    if !nvrtc_present() {
        return Err(numerical(
            "cuda::compile_ptx",
            "the NVRTC library (libnvrtc) is not present on this machine",
        ));
    }
    guarded("cuda::compile_ptx", || {
        let opts = CompileOptions {
            arch,
            ..nvrtc_options()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(source::kernel_source(), opts)
            .map_err(|e| numerical("cuda::compile_ptx", format!("{e:?}")))?;
        Ok(ptx.to_src())
    })
}

/// Where the kernels of a [`CudaBackend`] come from.
#[derive(Clone, Debug)]
pub enum KernelModule {
    /// Compile [`source::kernel_source`] with NVRTC on this machine.
    Nvrtc,
    /// PTX text compiled earlier by [`compile_ptx`] (for machines without `libnvrtc`).
    Ptx(String),
    /// A CUBIN image.
    Cubin(Vec<u8>),
}

/// The CUDA implementation of [`Backend`] (see the module docs).
#[derive(Debug)]
pub struct CudaBackend {
    ordinal: usize,
    stream: Arc<CudaStream>,
    f32_kernel: CudaFunction,
    bf16_kernel: CudaFunction,
}

/// `[B, L, V]` logits in device memory, `f32` or `bf16` (as raw `u16` bit patterns).
#[derive(Debug)]
pub struct DeviceLogits {
    data: DeviceData,
    dims: (usize, usize, usize),
}

#[derive(Debug)]
enum DeviceData {
    F32(CudaSlice<f32>),
    Bf16(CudaSlice<u16>),
}

fn check_len(len: usize, dims: (usize, usize, usize)) -> Result<()> {
    let want = dims
        .0
        .checked_mul(dims.1)
        .and_then(|x| x.checked_mul(dims.2));
    if want != Some(len) {
        return Err(Error::shape(
            "logits",
            format!("B·L·V elements for [B, L, V] = {dims:?}"),
            format!("{len} elements"),
        ));
    }
    Ok(())
}

impl DeviceLogits {
    /// Wraps a device buffer of `B·L·V` `f32` logits in row-major `[B, L, V]` order.
    ///
    /// # Errors
    /// [`Error::Shape`] when the length is not `B·L·V`.
    pub fn from_f32(data: CudaSlice<f32>, dims: (usize, usize, usize)) -> Result<Self> {
        check_len(data.len(), dims)?;
        Ok(DeviceLogits {
            data: DeviceData::F32(data),
            dims,
        })
    }

    /// Wraps a device buffer of `B·L·V` `bf16` logits (raw bit patterns: the upper 16 bits
    /// of the `f32`) in row-major `[B, L, V]` order. The kernel widens each to `f32`
    /// exactly, so the results equal those of the `f32` logits `bits << 16`.
    ///
    /// # Errors
    /// [`Error::Shape`] when the length is not `B·L·V`.
    pub fn from_bf16(data: CudaSlice<u16>, dims: (usize, usize, usize)) -> Result<Self> {
        check_len(data.len(), dims)?;
        Ok(DeviceLogits {
            data: DeviceData::Bf16(data),
            dims,
        })
    }

    /// `(B, L, V)`.
    pub fn dims(&self) -> (usize, usize, usize) {
        self.dims
    }

    /// Whether the logits are `bf16`.
    pub fn is_bf16(&self) -> bool {
        matches!(self.data, DeviceData::Bf16(_))
    }
}

/// The per-call layout shared by every row: the blocks of the allowed segments.
struct Layout {
    starts: Vec<u32>,
    lens: Vec<u32>,
    excluded: Vec<u32>,
}

fn layout(spec: &RowSpec, v: usize) -> Result<Layout> {
    let mut excluded = spec.excluded.clone();
    excluded.sort_unstable();
    excluded.dedup();
    let mut starts = Vec::new();
    let mut lens = Vec::new();
    for (a, b) in segments(&excluded, v) {
        let mut start = a;
        while start < b {
            let len = BLOCK_LEN.min(b - start);
            starts.push(start as u32);
            lens.push(len as u32);
            start += len;
        }
    }
    if starts.len() * RECORD_BYTES > SHARED_LIMIT {
        return Err(Error::invalid(
            "logits",
            format!(
                "V = {v} needs {} blocks of {BLOCK_LEN} ids: more than the {} that fit in \
                 the kernel's {SHARED_LIMIT} bytes of shared memory",
                starts.len(),
                SHARED_LIMIT / RECORD_BYTES
            ),
        ));
    }
    if v > u32::MAX as usize {
        return Err(Error::invalid("logits", format!("V = {v} exceeds u32 ids")));
    }
    Ok(Layout {
        starts,
        lens,
        excluded,
    })
}

/// A zero-stride `[B, L, V]` view (no data) standing in for device logits in argument
/// checks and in the host-side signatures of the fused steps.
fn placeholder(dims: (usize, usize, usize)) -> Result<ArrayView3<'static, f32>> {
    static ZERO: [f32; 1] = [0.0];
    ArrayView3::from_shape(ndarray::ShapeBuilder::strides(dims, (0, 0, 0)), &ZERO[..])
        .map_err(|e| Error::shape("logits", "[B, L, V]", e.to_string()))
}

/// Where a row's logits are, for the error of a bad row.
enum Source<'a> {
    Host(&'a ArrayView3<'a, f32>),
    Device(&'a DeviceLogits),
}

impl CudaBackend {
    /// The backend on device `ordinal`, kernels compiled by NVRTC.
    ///
    /// # Errors
    /// [`Error::Numerical`] when the driver or NVRTC library is absent, there is no such
    /// device, or compilation fails. Never panics.
    pub fn new(ordinal: usize) -> Result<Self> {
        CudaBackend::with_module(ordinal, KernelModule::Nvrtc)
    }

    /// The backend on device `ordinal` with kernels from `module`.
    ///
    /// # Errors
    /// As [`CudaBackend::new`].
    pub fn with_module(ordinal: usize, module: KernelModule) -> Result<Self> {
        let n = device_count()?;
        if ordinal >= n {
            return Err(Error::invalid(
                "ordinal",
                format!("device {ordinal} requested, {n} CUDA device(s) present"),
            ));
        }
        let ptx = match module {
            KernelModule::Nvrtc => Ptx::from_src(compile_ptx(None)?),
            KernelModule::Ptx(src) => Ptx::from_src(src),
            KernelModule::Cubin(image) => Ptx::from_binary(image),
        };
        guarded("CudaBackend::new", || {
            let ctx = CudaContext::new(ordinal).map_err(driver("CudaContext::new"))?;
            let module = ctx.load_module(ptx).map_err(driver("load_module"))?;
            let f32_kernel = module
                .load_function(source::KERNEL_NAMES[0])
                .map_err(driver("load_function"))?;
            let bf16_kernel = module
                .load_function(source::KERNEL_NAMES[1])
                .map_err(driver("load_function"))?;
            Ok(CudaBackend {
                ordinal,
                stream: ctx.default_stream(),
                f32_kernel,
                bf16_kernel,
            })
        })
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// The stream every call runs on (calls synchronise before returning).
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Copies host `f32` logits to the device.
    ///
    /// # Errors
    /// [`Error::Numerical`] on a driver failure.
    pub fn upload_f32(&self, logits: ArrayView3<'_, f32>) -> Result<DeviceLogits> {
        let dims = logits.dim();
        let host: Vec<f32> = logits.iter().copied().collect();
        let data = guarded("CudaBackend::upload_f32", || {
            self.stream
                .clone_htod(&host)
                .map_err(driver("CudaBackend::upload_f32"))
        })?;
        DeviceLogits::from_f32(data, dims)
    }

    /// Copies host `bf16` logits (raw bit patterns, row-major `[B, L, V]`) to the device.
    ///
    /// # Errors
    /// [`Error::Shape`] when `bits.len() ≠ B·L·V`; [`Error::Numerical`] on a driver failure.
    pub fn upload_bf16(&self, bits: &[u16], dims: (usize, usize, usize)) -> Result<DeviceLogits> {
        check_len(bits.len(), dims)?;
        let data = guarded("CudaBackend::upload_bf16", || {
            self.stream
                .clone_htod(bits)
                .map_err(driver("CudaBackend::upload_bf16"))
        })?;
        DeviceLogits::from_bf16(data, dims)
    }

    /// [`Backend::summarize`] on logits already in device memory: nothing of size `V` is
    /// copied; the summaries of the selected rows come back.
    ///
    /// # Errors
    /// Those of [`Backend::summarize`], plus [`Error::Numerical`] on a driver failure.
    pub fn summarize_device(
        &self,
        logits: &DeviceLogits,
        select: Option<ArrayView2<'_, bool>>,
        spec: &RowSpec,
        rng: &BatchRng<'_>,
        out: ArrayViewMut2<'_, RowSummary>,
    ) -> Result<()> {
        let view = placeholder(logits.dims)?;
        let (_, l, _) = check_summarize_args(&view, &select, spec, rng, &out)?;
        let flat = selected(&select, &out);
        let data_rows: Vec<u64> = flat.iter().map(|&f| f as u64).collect();
        self.run(
            logits,
            &data_rows,
            &flat,
            l,
            spec,
            rng,
            out,
            Source::Device(logits),
        )
    }

    /// `logits` as a [`Backend`]: pass [`BoundLogits::logits`] (a data-less stand-in of
    /// the right shape) wherever a fused step asks for host logits.
    pub fn bind<'a>(&'a self, logits: &'a DeviceLogits) -> BoundLogits<'a> {
        BoundLogits {
            backend: self,
            logits,
        }
    }

    /// Launches the kernel on `data_rows` of `logits` (positions `flat`) and writes `out`.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        logits: &DeviceLogits,
        data_rows: &[u64],
        flat: &[usize],
        l: usize,
        spec: &RowSpec,
        rng: &BatchRng<'_>,
        mut out: ArrayViewMut2<'_, RowSummary>,
        src: Source<'_>,
    ) -> Result<()> {
        let n = flat.len();
        if n == 0 {
            return Ok(());
        }
        let (_, _, v) = logits.dims;
        let lay = layout(spec, v)?;
        let n_rows = u32::try_from(n)
            .map_err(|_| Error::invalid("select", format!("{n} rows exceed u32")))?;
        let tau = spec.temperature;
        let temper = tau > 0.0 && tau != 1.0;
        let inv_tau = if temper {
            (1.0 / tau).clamp(INV_TAU_RANGE.0, INV_TAU_RANGE.1) as f32
        } else {
            1.0f32
        };
        let flags: i32 = (temper as i32)
            | ((spec.entropy as i32) << 1)
            | ((spec.margin as i32) << 2)
            | (((tau > 0.0) as i32) << 3);
        let rows: Vec<u64> = flat.iter().map(|&f| f as u64).collect();
        let nblk = lay.starts.len() as u32;
        let n_excl = lay.excluded.len() as u32;
        let seq_len = l as u32;
        let vocab = v as u32;
        let purpose = rng.purpose.0;
        let shared = (lay.starts.len() * RECORD_BYTES).max(RECORD_BYTES) as u32;
        let grid = n.min(MAX_GRID) as u32;
        // Empty host slices cannot be uploaded as zero-length buffers everywhere: pad.
        let pad = |x: &[u32]| if x.is_empty() { vec![0u32] } else { x.to_vec() };
        let (starts, lens, excl) = (pad(&lay.starts), pad(&lay.lens), pad(&lay.excluded));
        let (f64s, maxes, u32s) = guarded("CudaBackend::summarize", || {
            let st = &self.stream;
            let e = driver("CudaBackend::summarize");
            let d_data_rows = st.clone_htod(data_rows).map_err(&e)?;
            let d_rows = st.clone_htod(&rows).map_err(&e)?;
            let d_starts = st.clone_htod(&starts).map_err(&e)?;
            let d_lens = st.clone_htod(&lens).map_err(&e)?;
            let d_excl = st.clone_htod(&excl).map_err(&e)?;
            let d_streams = st.clone_htod(rng.streams).map_err(&e)?;
            let mut o_f64 = st.alloc_zeros::<f64>(n * 4).map_err(&e)?;
            let mut o_max = st.alloc_zeros::<f32>(n).map_err(&e)?;
            let mut o_u32 = st.alloc_zeros::<u32>(n * 3).map_err(&e)?;
            let cfg = LaunchConfig {
                grid_dim: (grid, 1, 1),
                block_dim: (THREADS, 1, 1),
                shared_mem_bytes: shared,
            };
            let kernel = match &logits.data {
                DeviceData::F32(_) => &self.f32_kernel,
                DeviceData::Bf16(_) => &self.bf16_kernel,
            };
            let mut b = st.launch_builder(kernel);
            match &logits.data {
                DeviceData::F32(x) => b.arg(x),
                DeviceData::Bf16(x) => b.arg(x),
            };
            b.arg(&d_data_rows)
                .arg(&d_rows)
                .arg(&n_rows)
                .arg(&seq_len)
                .arg(&vocab)
                .arg(&d_starts)
                .arg(&d_lens)
                .arg(&nblk)
                .arg(&d_excl)
                .arg(&n_excl)
                .arg(&d_streams)
                .arg(&rng.seed)
                .arg(&rng.step)
                .arg(&purpose)
                .arg(&inv_tau)
                .arg(&flags)
                .arg(&mut o_f64)
                .arg(&mut o_max)
                .arg(&mut o_u32);
            // SAFETY: the argument list matches the kernel's signature in
            // `source::KERNEL_C` one for one (pointer, pointer, pointer, u32, u32, u32,
            // pointer, pointer, u32, pointer, u32, pointer, u64, u32, u32, f32, i32,
            // pointer, pointer, pointer). Every index the kernel forms is in bounds:
            // `data_rows[k] < B·L` rows of `V` logits (checked shapes), blocks lie inside
            // `[0, V)` (built from the allowed segments), excluded ids `< V` (validated),
            // `flat / L < B = streams.len()` (validated), and the outputs hold 4, 1 and 3
            // values for each of the `n_rows` rows. Shared memory is sized `nblk` records.
            unsafe { b.launch(cfg) }.map_err(&e)?;
            let f64s = st.clone_dtoh(&o_f64).map_err(&e)?;
            let maxes = st.clone_dtoh(&o_max).map_err(&e)?;
            let u32s = st.clone_dtoh(&o_u32).map_err(&e)?;
            st.synchronize().map_err(&e)?;
            Ok((f64s, maxes, u32s))
        })?;
        // The first bad row in (b, i) order decides the error; `out` is untouched then.
        for (k, &f) in flat.iter().enumerate() {
            let status = u32s[3 * k + 2];
            if status != STATUS_OK {
                let (b, i) = (f / l, f % l);
                if status == STATUS_NON_FINITE {
                    return Err(self.non_finite(&src, data_rows[k], f, v, b, i));
                }
                return Err(Error::invalid(
                    "logits",
                    format!("row ({b}, {i}) has no finite allowed logit"),
                ));
            }
        }
        for (k, &f) in flat.iter().enumerate() {
            out[[f / l, f % l]] = RowSummary {
                argmax: u32s[3 * k],
                max: maxes[k],
                logsumexp: f64s[4 * k],
                margin: f64s[4 * k + 1],
                entropy: f64s[4 * k + 2],
                token: u32s[3 * k + 1],
                token_logprob: f64s[4 * k + 3],
            };
        }
        Ok(())
    }

    /// The error for a row the kernel flagged as non-finite: the first NaN or `+∞` of the
    /// row (the CPU backend's error, same flat index).
    fn non_finite(
        &self,
        src: &Source<'_>,
        data_row: u64,
        flat: usize,
        v: usize,
        b: usize,
        i: usize,
    ) -> Error {
        let row: Result<Vec<f32>> = match src {
            Source::Host(x) => Ok(x.slice(s![b, i, ..]).to_vec()),
            Source::Device(d) => {
                let r = data_row as usize * v..(data_row as usize + 1) * v;
                guarded("CudaBackend::summarize", || match &d.data {
                    DeviceData::F32(x) => self
                        .stream
                        .clone_dtoh(&x.slice(r))
                        .map_err(driver("CudaBackend::summarize")),
                    DeviceData::Bf16(x) => self
                        .stream
                        .clone_dtoh(&x.slice(r))
                        .map(|h| {
                            h.iter()
                                .map(|&u| f32::from_bits((u as u32) << 16))
                                .collect()
                        })
                        .map_err(driver("CudaBackend::summarize")),
                })
            }
        };
        let row = match row {
            Ok(r) => r,
            Err(e) => return e,
        };
        match row.iter().position(|x| x.is_nan() || *x == f32::INFINITY) {
            Some(k) => Error::NonFinite {
                arg: "logits",
                index: flat * v + k,
                value: row[k] as f64,
            },
            None => numerical(
                "CudaBackend::summarize",
                format!("row ({b}, {i}) summed to a non-finite value"),
            ),
        }
    }
}

/// The selected positions, flat `b·L + i`, in order.
fn selected(
    select: &Option<ArrayView2<'_, bool>>,
    out: &ArrayViewMut2<'_, RowSummary>,
) -> Vec<usize> {
    match select {
        None => (0..out.len()).collect(),
        Some(sel) => sel
            .iter()
            .enumerate()
            .filter(|&(_, &on)| on)
            .map(|(k, _)| k)
            .collect(),
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    /// Uploads the selected rows only, then runs the device kernel.
    fn summarize(
        &self,
        logits: ArrayView3<'_, f32>,
        select: Option<ArrayView2<'_, bool>>,
        spec: &RowSpec,
        rng: &BatchRng<'_>,
        out: ArrayViewMut2<'_, RowSummary>,
    ) -> Result<()> {
        let (_, l, v) = check_summarize_args(&logits, &select, spec, rng, &out)?;
        let flat = selected(&select, &out);
        if flat.is_empty() {
            return Ok(());
        }
        let mut host = Vec::with_capacity(flat.len() * v);
        for &f in &flat {
            host.extend(logits.slice(s![f / l, f % l, ..]).iter());
        }
        let data = guarded("CudaBackend::summarize", || {
            self.stream
                .clone_htod(&host)
                .map_err(driver("CudaBackend::summarize"))
        })?;
        let dev = DeviceLogits::from_f32(data, (flat.len(), 1, v))?;
        let data_rows: Vec<u64> = (0..flat.len() as u64).collect();
        self.run(
            &dev,
            &data_rows,
            &flat,
            l,
            spec,
            rng,
            out,
            Source::Host(&logits),
        )
    }
}

/// Device logits bound to a [`CudaBackend`]: a [`Backend`] whose `summarize` reads the
/// device buffer (the `logits` argument only supplies the shape, which must match).
#[derive(Debug)]
pub struct BoundLogits<'a> {
    backend: &'a CudaBackend,
    logits: &'a DeviceLogits,
}

impl BoundLogits<'_> {
    /// A data-less `[B, L, V]` view (all strides 0) to pass as the `logits` argument of a
    /// fused step.
    ///
    /// # Errors
    /// [`Error::Shape`] only if ndarray rejects the shape (it has no elements to index).
    pub fn logits(&self) -> Result<ArrayView3<'static, f32>> {
        placeholder(self.logits.dims)
    }
}

impl Backend for BoundLogits<'_> {
    fn name(&self) -> &'static str {
        "cuda-device"
    }

    fn summarize(
        &self,
        logits: ArrayView3<'_, f32>,
        select: Option<ArrayView2<'_, bool>>,
        spec: &RowSpec,
        rng: &BatchRng<'_>,
        out: ArrayViewMut2<'_, RowSummary>,
    ) -> Result<()> {
        if logits.dim() != self.logits.dims {
            return Err(Error::shape(
                "logits",
                format!("{:?} (the bound device logits)", self.logits.dims),
                format!("{:?}", logits.dim()),
            ));
        }
        self.backend
            .summarize_device(self.logits, select, spec, rng, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_mirrors_the_cpu_blocks() {
        let spec = RowSpec {
            excluded: vec![300, 2],
            ..RowSpec::default()
        };
        let lay = layout(&spec, 600).unwrap();
        assert_eq!(lay.excluded, vec![2, 300]);
        assert_eq!(lay.starts, vec![0, 3, 259, 301, 557]);
        assert_eq!(lay.lens, vec![2, 256, 41, 256, 43]);
        assert!(layout(&RowSpec::default(), 262_144).is_ok());
        assert!(layout(&RowSpec::default(), 1 << 20).is_err());
    }

    #[test]
    fn placeholder_has_the_shape_and_no_data() {
        let p = placeholder((2, 3, 50_000)).unwrap();
        assert_eq!(p.dim(), (2, 3, 50_000));
        assert_eq!(p[[1, 2, 49_999]], 0.0);
    }
}
