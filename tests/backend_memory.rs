//! `CpuBackend::summarize` allocates `O(B·L + threads·V)` bytes, never a `[B, L, V]`
//! temporary: a counting global allocator measures the peak of live heap bytes (and the
//! total allocated) during calls on a `[8, 128, 32768]` input (128 MiB of logits).
//!
//! One `#[test]` only, so that no other test of this binary allocates concurrently.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use discrete_diffusion::backend::cpu::CpuBackend;
use discrete_diffusion::backend::{Backend, BatchRng, RowSpec, RowSummary};
use discrete_diffusion::rng::Purpose;
use ndarray::{Array2, Array3, s};

/// The system allocator, counting live, peak and total bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static TOTAL: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, SeqCst) + by;
    PEAK.fetch_max(now, SeqCst);
    TOTAL.fetch_add(by, SeqCst);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees carry over; the counters are plain atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract of `GlobalAlloc::alloc` (non-zero-size layout).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract of `GlobalAlloc::alloc_zeroed`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator (i.e. by `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), SeqCst);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract of `GlobalAlloc::realloc`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), SeqCst);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// (peak live bytes above the starting level, total bytes allocated) during `f`.
fn measure(f: impl FnOnce()) -> (usize, usize) {
    let base = LIVE.load(SeqCst);
    PEAK.store(base, SeqCst);
    let total0 = TOTAL.load(SeqCst);
    f();
    (PEAK.load(SeqCst) - base, TOTAL.load(SeqCst) - total0)
}

#[test]
fn summarize_allocates_o_of_bl_plus_threads_v() {
    let (b, l, v) = (8usize, 128usize, 32768usize);
    let x = Array3::from_shape_fn((b, l, v), |(bi, i, k)| {
        ((bi * 7 + i * 13 + k * 31) % 97) as f32 * 0.1 - 4.0
    });
    // The same tensor with non-contiguous rows (every other entry of a [B, L, 2V] array):
    // the backend copies such rows into per-thread scratch.
    let wide = Array3::from_shape_fn((b, l, 2 * v), |(bi, i, k)| {
        if k % 2 == 0 {
            x[[bi, i, k / 2]]
        } else {
            f32::NAN
        }
    });
    let strided = wide.slice(s![.., .., ..;2]);
    let streams: Vec<u64> = (0..b as u64).collect();
    let rng = BatchRng {
        seed: 5,
        streams: &streams,
        step: 1,
        purpose: Purpose::CATEGORICAL,
    };
    let tensor_bytes = b * l * v * 4;
    let specs = [
        RowSpec {
            temperature: 0.0,
            ..RowSpec::default()
        },
        RowSpec {
            temperature: 0.8,
            excluded: vec![3, (v - 1) as u32],
            entropy: true,
            margin: true,
        },
    ];
    for threads in [1usize, 2, 4] {
        let cpu = CpuBackend::with_threads(threads).unwrap();
        let bound = (4 * b * l * 64 + threads * v * 16).min(tensor_bytes / 100);
        for spec in &specs {
            for (name, input) in [("contiguous", x.view()), ("strided", strided)] {
                let mut out = Array2::from_elem((b, l), RowSummary::default());
                // Warm-up: the pool's threads and their first jobs.
                cpu.summarize(input, None, spec, &rng, out.view_mut())
                    .unwrap();
                let (peak, total) = measure(|| {
                    cpu.summarize(input, None, spec, &rng, out.view_mut())
                        .unwrap();
                });
                eprintln!(
                    "{threads} threads, {name}, τ {}: peak {peak} B, total {total} B \
                     (bound {bound} B; the tensor is {tensor_bytes} B)",
                    spec.temperature
                );
                assert!(peak < bound, "peak {peak} ≥ {bound}");
                if name == "contiguous" {
                    assert!(total < bound, "total {total} ≥ {bound}");
                }
            }
        }
    }
}
