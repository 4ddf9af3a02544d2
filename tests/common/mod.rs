//! Shared helpers for the integration tests: conformance fixtures and tolerances.
#![allow(dead_code)]

use serde_json::Value;

/// Load `tests/fixtures/anchors/<name>.json`.
pub fn load_anchor(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/anchors/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

/// All cases of a fixture file whose name starts with `prefix`.
pub fn cases<'a>(file: &'a Value, prefix: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    file["cases"]
        .as_array()
        .expect("cases array")
        .iter()
        .filter(move |c| c["name"].as_str().unwrap().starts_with(prefix))
}

/// A JSON number, or one of the strings "inf", "-inf", "nan".
pub fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => match s.as_str() {
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            "nan" => f64::NAN,
            other => panic!("not a number: {other}"),
        },
        other => panic!("not a number: {other}"),
    }
}

/// A JSON vector of numbers.
pub fn vec1(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(num).collect()
}

/// A JSON matrix (nested lists, row-major).
pub fn vec2(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().expect("array").iter().map(vec1).collect()
}

/// The case's tolerance `(abs, rel)`.
pub fn tol(case: &Value) -> (f64, f64) {
    (
        num(&case["tolerance"]["abs"]),
        num(&case["tolerance"]["rel"]),
    )
}

/// numpy `allclose` on one element: `|got − exp| ≤ abs + rel·|exp|`; infinities must match.
pub fn close(got: f64, exp: f64, (abs, rel): (f64, f64)) -> bool {
    if exp.is_infinite() || got.is_infinite() {
        return got == exp;
    }
    if exp.is_nan() {
        return got.is_nan();
    }
    (got - exp).abs() <= abs + rel * exp.abs()
}

/// Assert two vectors agree elementwise within the tolerance, naming the case on failure.
pub fn assert_close(what: &str, got: &[f64], exp: &[f64], t: (f64, f64)) {
    assert_eq!(
        got.len(),
        exp.len(),
        "{what}: length {} vs {}",
        got.len(),
        exp.len()
    );
    for (i, (&g, &e)) in got.iter().zip(exp).enumerate() {
        assert!(
            close(g, e, t),
            "{what}[{i}]: got {g:e}, expected {e:e} (tol {t:?})"
        );
    }
}

/// Assert a scalar agrees within the tolerance.
pub fn assert_close1(what: &str, got: f64, exp: f64, t: (f64, f64)) {
    assert!(
        close(got, exp, t),
        "{what}: got {got:e}, expected {exp:e} (tol {t:?})"
    );
}
