//! Quickstart (temporary while the foundation lands): counter-based random numbers.
use discrete_diffusion::rng::{CounterRng, Purpose, RngKey};

fn main() {
    let key = RngKey::for_stream(2024, 0);
    let mut rng = CounterRng::new(key, Purpose::CATEGORICAL, 0, 0);
    let u: Vec<f64> = (0..4).map(|_| rng.uniform()).collect();
    println!("first uniforms of stream 0: {u:?}");
}
