//! The CUDA backend (`--features cuda`).
//!
//! Three kinds of test:
//!
//! * **everywhere** (no GPU, no CUDA library needed): device detection returns `Err`
//!   instead of panicking; the kernel source is well formed; the Philox and `exp` C code
//!   of the kernel, compiled by the host C compiler (`cc`), returns exactly the bits of
//!   `rng::philox` and `backend::cpu::exp` (skipped, with a message, if `cc` is absent);
//! * **with `libnvrtc`** (no GPU): NVRTC compiles the kernels to PTX (skipped, with a
//!   message, when the library cannot be loaded; see `docs/cuda.md` for a pip-installed
//!   NVRTC). With `DD_CUDA_PTX_OUT=path` the PTX is written there (the GPU bundle uses it);
//! * **with a GPU**: parity with the `CpuBackend` (tokens and argmax bit for bit, sums to
//!   `f64` rounding) at `V ∈ {4, 25, 32768, 262144}`, `f32` and `bf16`; every fused step on
//!   device-resident logits against the CPU; the 262,144-way tail test on the GPU path.
//!   Each skips with the reason when no device (or no kernel module) is available. The
//!   kernels come from NVRTC, or from the PTX file named by `DD_CUDA_MODULE` on machines
//!   without `libnvrtc` (`scripts/gpu_check.sh`).
#![cfg(feature = "cuda")]

use std::process::Command;

use discrete_diffusion::backend::cpu::CpuBackend;
use discrete_diffusion::backend::cpu::exp::exp_nonpositive;
use discrete_diffusion::backend::cuda::{
    CudaBackend, KernelModule, compile_ptx, device_count, driver_present, nvrtc_options,
    nvrtc_present, source,
};
use discrete_diffusion::backend::steps::{
    DfmEulerStep, JumpRule, LladaStep, MdlmStep, Scorer, StepOutput, StepRng, ThresholdStep,
    dfm_euler_step, llada_step, mdlm_ancestral_step, sample_categorical, threshold_step,
};
use discrete_diffusion::backend::{Backend, BatchRng, RowSpec, RowSummary};
use discrete_diffusion::rng::{CounterRng, Purpose, RngKey, philox4x32_10};
use discrete_diffusion::schedule::{Kappa, Linear, LogLinear};
use ndarray::{Array2, Array3, ArrayView3};
use statrs::distribution::{Binomial, DiscreteCDF};

// ---------------------------------------------------------------------------------------
// No GPU needed.

#[test]
fn no_device_is_an_error_not_a_panic() {
    let count = device_count();
    let backend = CudaBackend::new(0);
    if !driver_present() {
        let e = count.expect_err("no libcuda: device_count must be Err");
        assert!(e.to_string().contains("libcuda"), "{e}");
        let e = backend.expect_err("no libcuda: CudaBackend::new must be Err");
        assert!(e.to_string().contains("libcuda"), "{e}");
        eprintln!("no CUDA driver library: device_count() = Err({e})");
    } else {
        eprintln!("CUDA driver present: device_count() = {count:?}");
        if let Ok(0) | Err(_) = count {
            assert!(backend.is_err());
        }
    }
    // A device ordinal past the end is an error, never a panic.
    assert!(CudaBackend::new(usize::MAX).is_err());
    if !nvrtc_present() {
        let e = compile_ptx(None).expect_err("no libnvrtc: compile_ptx must be Err");
        assert!(e.to_string().contains("libnvrtc"), "{e}");
    }
}

#[test]
fn kernel_source_is_well_formed() {
    let src = source::kernel_source();
    if let Ok(path) = std::env::var("DD_CUDA_SRC_OUT") {
        std::fs::write(&path, &src).unwrap();
    }
    assert!(!src.contains('\0'));
    for (open, close) in [('{', '}'), ('(', ')'), ('[', ']')] {
        let o = src.matches(open).count();
        let c = src.matches(close).count();
        assert_eq!(o, c, "unbalanced {open}{close}: {o} vs {c}");
    }
    for name in source::KERNEL_NAMES {
        assert!(
            src.contains(&format!("DD_SUMMARIZE({name},")),
            "kernel {name} not instantiated"
        );
    }
    assert!(src.contains("extern \"C\" __global__"));
    // The only #includes are the host branch's <math.h> and <string.h> (NVRTC has no
    // toolkit headers).
    let includes: Vec<&str> = src.lines().filter(|l| l.contains("#include")).collect();
    assert_eq!(includes, vec!["#include <math.h>", "#include <string.h>"]);
    let host_branch = src.find("#else").unwrap();
    assert!(src.find("#include").unwrap() > host_branch);
    // Macro continuation lines must end in a backslash with nothing after it.
    for (k, line) in src.lines().enumerate() {
        assert!(
            !line.ends_with("\\ "),
            "line {k}: space after a continuation"
        );
    }
    let opts = nvrtc_options();
    assert_eq!(opts.fmad, Some(false));
    assert_eq!(opts.ftz, Some(false));
    assert_eq!(opts.use_fast_math, Some(false));
}

/// A C program around the kernel's host-checkable part that prints Philox outputs, stream
/// keys, uniforms and `exp` bits for the inputs on stdin.
const CHECK_MAIN_C: &str = r#"
#include <stdio.h>
int main(void) {
    char kind[16];
    while (scanf("%15s", kind) == 1) {
        if (kind[0] == 'P') {
            dd_u32 c[4], k[2], o[4];
            if (scanf("%u %u %u %u %u %u", &c[0], &c[1], &c[2], &c[3], &k[0], &k[1]) != 6) return 2;
            dd_philox4x32_10(c, k, o);
            printf("%u %u %u %u\n", o[0], o[1], o[2], o[3]);
        } else if (kind[0] == 'U') {
            dd_u64 seed, stream; dd_u32 purpose, step, pos, key[2];
            if (scanf("%llu %llu %u %u %u", &seed, &stream, &purpose, &step, &pos) != 5) return 2;
            dd_key_for_stream(seed, stream, key);
            double u = dd_first_uniform(key, purpose, step, pos);
            dd_u64 bits; memcpy(&bits, &u, 8);
            printf("%u %u %llu\n", key[0], key[1], bits);
        } else if (kind[0] == 'E') {
            dd_u32 b;
            if (scanf("%u", &b) != 1) return 2;
            printf("%u\n", dd_f2u(dd_exp_nonpositive(dd_u2f(b))));
        } else {
            return 3;
        }
    }
    return 0;
}
"#;

/// Compiles the kernel's Philox and `exp` with the host C compiler, feeds it inputs and
/// compares every output bit with the Rust functions.
#[test]
fn kernel_philox_and_exp_match_rust_on_the_host_c_compiler() {
    let dir = std::env::temp_dir().join(format!("dd_cuda_cc_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c_path = dir.join("check.c");
    let exe = dir.join("check");
    std::fs::write(
        &c_path,
        format!("{}{}", source::host_checkable_source(), CHECK_MAIN_C),
    )
    .unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let built = Command::new(&cc)
        .args(["-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Werror"])
        .arg(&c_path)
        .arg("-o")
        .arg(&exe)
        .arg("-lm")
        .output();
    let built = match built {
        Ok(b) => b,
        Err(e) => {
            eprintln!("skipping: no host C compiler `{cc}` ({e})");
            return;
        }
    };
    assert!(
        built.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );

    // Inputs: Random123 known answers, random counters/keys, addresses, exp arguments.
    let mut input = String::new();
    let mut expect = Vec::new();
    let mut rg = CounterRng::new(RngKey::for_stream(99, 1), Purpose::USER, 0, 0);
    let mut philox = vec![
        ([0u32; 4], [0u32; 2]),
        ([u32::MAX; 4], [u32::MAX; 2]),
        (
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0],
        ),
    ];
    for _ in 0..200 {
        let c = [0; 4].map(|_: u32| rg.next_u32());
        let k = [0; 2].map(|_: u32| rg.next_u32());
        philox.push((c, k));
    }
    for (c, k) in philox {
        input += &format!("P {} {} {} {} {} {}\n", c[0], c[1], c[2], c[3], k[0], k[1]);
        let o = philox4x32_10(c, k);
        expect.push(format!("{} {} {} {}", o[0], o[1], o[2], o[3]));
    }
    assert_eq!(expect[0], "1713891541 3781805453 3159862348 2600524760"); // 6627e8d5 …
    for j in 0..300u64 {
        let seed = rg.next_u64();
        let stream = if j % 3 == 0 { j } else { rg.next_u64() };
        let purpose = [1, 2, 3, 4, 5, 1 << 16][j as usize % 6];
        let step = (j % 7) as u32 * 1000;
        let pos = rg.next_u32() >> (j % 32);
        input += &format!("U {seed} {stream} {purpose} {step} {pos}\n");
        let key = RngKey::for_stream(seed, stream);
        let u = CounterRng::new(key, Purpose(purpose), step, pos).uniform();
        expect.push(format!("{} {} {}", key.0[0], key.0[1], u.to_bits()));
    }
    let mut args: Vec<f32> = vec![
        0.0,
        -0.0,
        f32::NEG_INFINITY,
        f32::NAN,
        -87.0,
        -87.000_01,
        -1e-30,
        -f32::MIN_POSITIVE,
        -48.866_352,
        -0.346_573_6,
        -1e30,
    ];
    // Every 9973rd f32 of [-90, 0] by bit pattern, plus random ones.
    let mut b = 0u32;
    while f32::from_bits(0x8000_0000 | b) >= -90.0 {
        args.push(f32::from_bits(0x8000_0000 | b));
        b += 9973;
    }
    for _ in 0..20_000 {
        args.push(-(rg.uniform() * 100.0) as f32);
    }
    let exp_from = expect.len();
    for &y in &args {
        input += &format!("E {}\n", y.to_bits());
        expect.push(format!("{}", exp_nonpositive(y).to_bits()));
    }

    // Input from a file (writing a pipe while the child fills the other would deadlock).
    let in_path = dir.join("input.txt");
    std::fs::write(&in_path, input.as_bytes()).unwrap();
    let out = Command::new(&exe)
        .stdin(std::fs::File::open(&in_path).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success());
    let got = String::from_utf8(out.stdout).unwrap();
    let got: Vec<&str> = got.lines().collect();
    assert_eq!(got.len(), expect.len());
    let mut bad = 0;
    // A NaN's sign and payload are not specified (a software `fmaf` returns the default NaN,
    // `vfmadd` the input's): for the exp outputs, two NaNs agree.
    let both_nan = |g: &str, e: &str| {
        let nan = |x: &str| x.parse::<u32>().is_ok_and(|b| f32::from_bits(b).is_nan());
        nan(g) && nan(e)
    };
    for (k, (g, e)) in got.iter().zip(&expect).enumerate() {
        if g != e && !(k >= exp_from && both_nan(g, e)) {
            bad += 1;
            if bad < 10 {
                eprintln!("mismatch at {k}: C {g}, Rust {e}");
            }
        }
    }
    assert_eq!(bad, 0, "{bad} of {} outputs differ", expect.len());
    eprintln!(
        "host C ({cc}) reproduces {} Philox / uniform / exp outputs bit for bit",
        expect.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// NVRTC compiles the kernels (no GPU needed; skipped without libnvrtc).
#[test]
fn nvrtc_compiles_the_kernels() {
    if !nvrtc_present() {
        eprintln!(
            "skipping: libnvrtc not found (see docs/cuda.md: pip download nvidia-cuda-nvrtc, \
             then LD_LIBRARY_PATH)"
        );
        return;
    }
    let arch = std::env::var("DD_CUDA_ARCH").ok();
    let arch: Option<&'static str> = arch.map(|a| &*Box::leak(a.into_boxed_str()));
    let ptx = compile_ptx(arch.or(Some("compute_90"))).expect("NVRTC compiles the kernels");
    for name in source::KERNEL_NAMES {
        assert!(ptx.contains(&format!(".entry {name}")), "{name} missing");
    }
    // The only f32 fused multiply-adds are the explicit `dd_fma` of the exp (the CPU's
    // `mul_add`): with `dd_fma` turned into a plain multiply and add, the same options
    // must leave no `fma.rn.f32` at all (NVRTC contracted nothing else).
    assert!(
        ptx.contains("fma.rn.f32"),
        "the exp's explicit FMAs are missing"
    );
    let fused = "return __fmaf_rn(a, b, c);";
    assert!(source::kernel_source().contains(fused));
    let unfused = source::kernel_source().replace(fused, "return a * b + c;");
    let opts = cudarc::nvrtc::CompileOptions {
        arch: arch.or(Some("compute_90")),
        ..nvrtc_options()
    };
    let plain = cudarc::nvrtc::compile_ptx_with_opts(unfused, opts).expect("NVRTC compiles");
    assert!(
        !plain.to_src().contains("fma.rn.f32"),
        "NVRTC contracted an f32 multiply-add"
    );
    if let Ok(path) = std::env::var("DD_CUDA_PTX_OUT") {
        std::fs::write(&path, &ptx).unwrap();
        eprintln!("PTX written to {path}");
    }
    eprintln!("NVRTC compiled the kernels: {} bytes of PTX", ptx.len());
}

// ---------------------------------------------------------------------------------------
// GPU needed.

/// The device backend, or `None` with the reason printed (a panic instead when
/// `DD_REQUIRE_GPU=1`, as on the GPU machine, so that a broken setup cannot pass as a skip).
fn gpu() -> Option<CudaBackend> {
    let required = std::env::var("DD_REQUIRE_GPU").is_ok_and(|v| v == "1");
    let made = match std::env::var("DD_CUDA_MODULE") {
        Ok(path) => match std::fs::read_to_string(&path) {
            Ok(ptx) => CudaBackend::with_module(0, KernelModule::Ptx(ptx)),
            Err(e) => {
                assert!(!required, "cannot read DD_CUDA_MODULE={path}: {e}");
                eprintln!("skipping: cannot read DD_CUDA_MODULE={path}: {e}");
                return None;
            }
        },
        Err(_) => CudaBackend::new(0),
    };
    match made {
        Ok(b) => Some(b),
        Err(e) if required => panic!("DD_REQUIRE_GPU=1 but no CUDA backend: {e}"),
        Err(e) => {
            eprintln!("skipping: no CUDA device available ({e})");
            None
        }
    }
}

/// `[B, L, V]` logits `scale·N(0,1)`, with ties to the maximum and `−∞` entries sprinkled.
fn logits(b: usize, l: usize, v: usize, scale: f64, stream: u64) -> Array3<f32> {
    let mut g = CounterRng::new(RngKey::for_stream(7, stream), Purpose::USER, 0, 0);
    let mut x = Array3::from_shape_fn((b, l, v), |_| {
        let u1 = g.uniform_open();
        let u2 = g.uniform();
        (scale * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    });
    for ((bi, i, k), val) in x.indexed_iter_mut() {
        let h = (bi * 31 + i * 17 + k * 7) % 97;
        if h == 3 && k > 0 {
            *val = f32::NEG_INFINITY;
        }
        if h == 5 {
            *val = 9.5; // ties at a high value
        }
    }
    x
}

/// Compares two summaries: exact on the discrete outputs, `f64` rounding on the sums.
fn compare(cpu: &Array2<RowSummary>, gpu: &Array2<RowSummary>, what: &str) -> usize {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + a.abs().max(b.abs()));
    let mut bitwise = 0;
    for ((idx, c), g) in cpu.indexed_iter().zip(gpu.iter()) {
        assert_eq!(c.argmax, g.argmax, "{what} {idx:?}: argmax");
        assert_eq!(c.max.to_bits(), g.max.to_bits(), "{what} {idx:?}: max");
        assert_eq!(c.token, g.token, "{what} {idx:?}: token");
        assert!(
            close(c.logsumexp, g.logsumexp),
            "{what} {idx:?}: lse {c:?} {g:?}"
        );
        assert!(close(c.token_logprob, g.token_logprob), "{what} {idx:?}");
        assert!(close(c.margin, g.margin), "{what} {idx:?}: margin");
        assert!(close(c.entropy, g.entropy), "{what} {idx:?}: entropy");
        bitwise += usize::from(c == g);
    }
    bitwise
}

fn specs(v: usize) -> Vec<RowSpec> {
    vec![
        RowSpec::default(),
        RowSpec {
            temperature: 0.0,
            excluded: vec![],
            entropy: true,
            margin: true,
        },
        RowSpec {
            temperature: 0.7,
            excluded: vec![(v - 1) as u32, 0],
            entropy: true,
            margin: true,
        },
        RowSpec {
            temperature: 1.0,
            excluded: vec![(v / 2) as u32],
            entropy: true,
            margin: false,
        },
    ]
}

#[test]
fn parity_with_the_cpu_backend() {
    let Some(gpu) = gpu() else { return };
    let cpu = CpuBackend::new();
    for (v, b, l) in [(4, 8, 64), (25, 8, 64), (32_768, 4, 16), (262_144, 2, 4)] {
        let x = logits(b, l, v, 3.0, v as u64);
        let streams: Vec<u64> = (0..b as u64).map(|s| 1000 + s).collect();
        let mut select = Array2::from_elem((b, l), true);
        select[[0, 1]] = false;
        for (k, spec) in specs(v).iter().enumerate() {
            let rng = BatchRng {
                seed: 5,
                streams: &streams,
                step: k as u32,
                purpose: Purpose::CATEGORICAL,
            };
            let mut c = Array2::from_elem((b, l), RowSummary::default());
            let mut g = c.clone();
            cpu.summarize(x.view(), Some(select.view()), spec, &rng, c.view_mut())
                .unwrap();
            gpu.summarize(x.view(), Some(select.view()), spec, &rng, g.view_mut())
                .unwrap();
            let bits = compare(&c, &g, &format!("V={v} spec {k} host"));
            // The same on device-resident logits, f32 and bf16.
            let dev = gpu.upload_f32(x.view()).unwrap();
            let mut d = Array2::from_elem((b, l), RowSummary::default());
            gpu.summarize_device(&dev, Some(select.view()), spec, &rng, d.view_mut())
                .unwrap();
            compare(&c, &d, &format!("V={v} spec {k} device"));
            let bf: Vec<u16> = x.iter().map(|f| (f.to_bits() >> 16) as u16).collect();
            let xb = Array3::from_shape_vec(
                (b, l, v),
                bf.iter()
                    .map(|&h| f32::from_bits((h as u32) << 16))
                    .collect(),
            )
            .unwrap();
            let devb = gpu.upload_bf16(&bf, (b, l, v)).unwrap();
            cpu.summarize(xb.view(), Some(select.view()), spec, &rng, c.view_mut())
                .unwrap();
            gpu.summarize_device(&devb, Some(select.view()), spec, &rng, d.view_mut())
                .unwrap();
            compare(&c, &d, &format!("V={v} spec {k} bf16"));
            eprintln!(
                "V={v} spec {k}: tokens identical; {bits}/{} summaries bit-identical",
                b * l
            );
        }
    }
}

#[test]
fn gpu_errors_match_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let cpu = CpuBackend::new();
    let streams = [1u64, 2];
    let rng = BatchRng {
        seed: 0,
        streams: &streams,
        step: 0,
        purpose: Purpose::CATEGORICAL,
    };
    let mut x = logits(2, 3, 300, 1.0, 1);
    x[[1, 1, 299]] = f32::NAN;
    x[[1, 2, 5]] = f32::INFINITY;
    let spec = RowSpec::default();
    let mut o = Array2::from_elem((2, 3), RowSummary::default());
    let ce = cpu
        .summarize(x.view(), None, &spec, &rng, o.view_mut())
        .unwrap_err();
    let ge = gpu
        .summarize(x.view(), None, &spec, &rng, o.view_mut())
        .unwrap_err();
    assert_eq!(ce.to_string(), ge.to_string());
    let dev = gpu.upload_f32(x.view()).unwrap();
    let de = gpu
        .summarize_device(&dev, None, &spec, &rng, o.view_mut())
        .unwrap_err();
    assert_eq!(ce.to_string(), de.to_string());
    // No finite allowed logit.
    let mut y = logits(2, 3, 300, 1.0, 2);
    for k in 0..300 {
        y[[0, 2, k]] = f32::NEG_INFINITY;
    }
    let ce = cpu
        .summarize(y.view(), None, &spec, &rng, o.view_mut())
        .unwrap_err();
    let ge = gpu
        .summarize(y.view(), None, &spec, &rng, o.view_mut())
        .unwrap_err();
    assert_eq!(ce.to_string(), ge.to_string());
}

/// Every fused step of `backend::steps`, on the CPU (host logits) and on the GPU
/// (device-resident logits through `CudaBackend::bind`): same tokens, same commits.
#[test]
fn fused_steps_on_device_logits_match_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let cpu = CpuBackend::new();
    for (b, l, v) in [(4, 64, 25), (2, 128, 32_768)] {
        let x = logits(b, l, v, 3.0, 77);
        let mask = (v - 1) as u32;
        let tokens = Array2::from_shape_fn((b, l), |(bi, i)| {
            if (bi * 7 + i * 3) % 5 < 3 {
                mask
            } else {
                (i % (v - 1)) as u32
            }
        });
        let dev = gpu.upload_f32(x.view()).unwrap();
        let bound = gpu.bind(&dev);
        let placeholder = bound.logits().unwrap();
        let streams: Vec<u64> = (0..b as u64).map(|s| 40 + s).collect();
        let rng = StepRng {
            seed: 11,
            streams: &streams,
            step: 3,
        };
        let c = run_steps(&cpu, x.view(), &tokens, mask, &rng);
        let g = run_steps(&bound, placeholder, &tokens, mask, &rng);
        for ((name, ct, co), (_, gt, go)) in c.iter().zip(&g) {
            assert_eq!(ct, gt, "{name}: tokens differ (B={b} L={l} V={v})");
            assert_eq!(co.read, go.read, "{name}: rows read");
            assert_eq!(co.commits.len(), go.commits.len(), "{name}");
            for (a, z) in co.commits.iter().zip(&go.commits) {
                assert_eq!((a.seq, a.pos, a.token), (z.seq, z.pos, z.token), "{name}");
                assert!((a.logprob - z.logprob).abs() <= 1e-12 * (1.0 + a.logprob.abs()));
            }
            eprintln!(
                "{name} (B={b} L={l} V={v}): {} commits identical",
                co.commits.len()
            );
        }
    }
}

/// The step harness itself (parameters valid, every step succeeds, deterministic) on the
/// CPU, so that a GPU run is not spent on a broken harness.
#[test]
fn step_harness_runs_on_the_cpu() {
    let cpu = CpuBackend::new();
    let (b, l, v) = (3, 40, 25);
    let x = logits(b, l, v, 3.0, 5);
    let mask = (v - 1) as u32;
    let tokens = Array2::from_shape_fn((b, l), |(bi, i)| if (bi + i) % 2 == 0 { mask } else { 1 });
    let streams = [4u64, 5, 6];
    let rng = StepRng {
        seed: 1,
        streams: &streams,
        step: 0,
    };
    let a = run_steps(&cpu, x.view(), &tokens, mask, &rng);
    let z = run_steps(&cpu, x.view(), &tokens, mask, &rng);
    assert_eq!(a.len(), 7);
    for ((name, ta, oa), (_, tz, oz)) in a.iter().zip(&z) {
        assert_eq!(ta, tz, "{name}");
        assert_eq!(oa.commits, oz.commits, "{name}");
        assert!(
            !oa.commits.is_empty() || *name == "mdlm",
            "{name} committed nothing"
        );
    }
}

type StepResult = (&'static str, Array2<u32>, StepOutput);

/// Runs each fused step once from `tokens` (the CPU and GPU paths share this code).
fn run_steps<B: Backend>(
    backend: &B,
    x: ArrayView3<'_, f32>,
    tokens: &Array2<u32>,
    mask: u32,
    rng: &StepRng<'_>,
) -> Vec<StepResult> {
    let mut res = Vec::new();
    let (b, l) = tokens.dim();
    let mut t = tokens.clone();
    let o = sample_categorical(backend, x, None, &RowSpec::default(), rng, t.view_mut()).unwrap();
    res.push(("categorical", t, o));
    let mut t = tokens.clone();
    let sched = LogLinear::new(1e-3).unwrap();
    let p = MdlmStep {
        mask_id: mask,
        t: 0.5,
        s: 0.25,
    };
    let o = mdlm_ancestral_step(backend, &sched, x, t.view_mut(), &p, rng).unwrap();
    res.push(("mdlm", t, o));
    for (name, temperature, scorer) in [
        ("llada_confidence_t1", 1.0, Scorer::Confidence),
        ("llada_margin_greedy", 0.0, Scorer::Margin),
        ("llada_neg_entropy", 0.8, Scorer::NegEntropy),
    ] {
        let mut t = tokens.clone();
        let k = vec![(l / 8).max(1); b];
        let p = LladaStep {
            mask_id: mask,
            temperature,
            scorer,
            exclude_mask: true,
        };
        let o = llada_step(backend, x, t.view_mut(), None, &k, &p, rng).unwrap();
        res.push((name, t, o));
    }
    let mut t = tokens.clone();
    let p = ThresholdStep {
        mask_id: mask,
        temperature: 0.0,
        threshold: 0.3,
        exclude_mask: false,
    };
    let o = threshold_step(backend, x, t.view_mut(), None, &p, rng).unwrap();
    res.push(("fast_dllm_threshold", t, o));
    let mut t = tokens.clone();
    let kappa = Kappa::convex(Linear::new());
    let p = DfmEulerStep {
        mask_id: mask,
        s: 0.5,
        s_next: 0.6,
        rule: JumpRule::Exponential,
        final_step: false,
        exclude_mask: true,
    };
    let o = dfm_euler_step(backend, &kappa, x, t.view_mut(), &p, rng).unwrap();
    res.push(("dfm_euler", t, o));
    res
}

/// The 262,144-way tail test on the GPU path (docs/rng.md §5, inverse-CDF form): head
/// logit 0 mid-row, 262,143 tail logits `c` with total tail probability
/// `p = (V−1)e^c / (1 + (V−1)e^c) = 1.396 %`; over 1,024 rows the tail count must fall in
/// the Binomial(1024, p) acceptance region at `α = 10⁻⁴` (`[2, 31]`), and the GPU's draws
/// must equal the CPU's row for row. An `f32` cumulative sum (or a 24-bit uniform) cannot
/// resolve per-token masses of `5.4·10⁻⁸` against a head of 0.986.
#[test]
fn tail_of_a_262144_way_row_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    const V: usize = 262_144;
    const ROWS: usize = 1024;
    let p = 0.013_96f64;
    let c = (p / ((1.0 - p) * (V - 1) as f64)).ln() as f32;
    let head = V / 2;
    let mut row = vec![c; V];
    row[head] = 0.0;
    let mut x = Array3::<f32>::zeros((ROWS, 1, V));
    for mut r in x.outer_iter_mut() {
        r.row_mut(0).assign(&ndarray::ArrayView1::from(&row[..]));
    }
    let streams: Vec<u64> = (0..ROWS as u64).collect();
    let rng = BatchRng {
        seed: 2024,
        streams: &streams,
        step: 0,
        purpose: Purpose::CATEGORICAL,
    };
    let spec = RowSpec::default();
    let mut g = Array2::from_elem((ROWS, 1), RowSummary::default());
    let mut cpu_out = g.clone();
    let dev = gpu.upload_f32(x.view()).unwrap();
    gpu.summarize_device(&dev, None, &spec, &rng, g.view_mut())
        .unwrap();
    CpuBackend::new()
        .summarize(x.view(), None, &spec, &rng, cpu_out.view_mut())
        .unwrap();
    let hits = g.iter().filter(|s| s.token as usize != head).count();
    let cpu_hits = cpu_out.iter().filter(|s| s.token as usize != head).count();
    for (a, z) in g.iter().zip(&cpu_out) {
        assert_eq!(a.token, z.token);
    }
    // Exact p of the f32 logits, then the Binomial acceptance region.
    let w = (c as f64).exp() * (V - 1) as f64;
    let p_exact = w / (1.0 + w);
    let bin = Binomial::new(p_exact, ROWS as u64).unwrap();
    let alpha = 1e-4;
    let lo = (0..=ROWS as u64)
        .find(|&k| bin.cdf(k) > alpha / 2.0)
        .unwrap();
    let hi = (0..=ROWS as u64)
        .find(|&k| bin.cdf(k) >= 1.0 - alpha / 2.0)
        .unwrap();
    eprintln!(
        "tail hits: GPU {hits}, CPU {cpu_hits}, expected {:.1}, region [{lo}, {hi}]",
        p_exact * ROWS as f64
    );
    assert!((lo..=hi).contains(&(hits as u64)), "{hits} ∉ [{lo}, {hi}]");
}
