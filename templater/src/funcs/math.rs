//! Math helpers with upstream's reversed argument order (`add b a` = a+b, so
//! `{{ 5 | subtract 1 }}` is 4) and Go's int64/uint64/float64 promotion.

use super::{FuncResult, go_type};
use crate::value::{Value, go_float_g};

#[derive(Clone, Copy)]
enum Num {
    I(i64),
    U(u64),
    F(f64),
}

fn num(name: &str, v: &Value) -> Result<Num, String> {
    match v {
        Value::Int(i) => Ok(Num::I(*i)),
        Value::Uint(u) => Ok(Num::U(*u)),
        Value::Float(f) => Ok(Num::F(*f)),
        other => Err(format!(
            "{name}: unknown type for {} ({})",
            quoted(other),
            go_type(other)
        )),
    }
}

/// `%q` of a reflect.Value as upstream's messages print it.
fn quoted(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Float(f) => format!("%!q(float64={})", go_float_g(*f)),
        other => format!("{other}"),
    }
}

fn as_f(n: Num) -> f64 {
    match n {
        Num::I(i) => i as f64,
        Num::U(u) => u as f64,
        Num::F(f) => f,
    }
}

/// `name b a` → `a <op> b`.
pub(super) fn apply(name: &str, b: &Value, a: &Value) -> FuncResult {
    let av = num(name, a)?;
    let bv = num(name, b)?;
    let div_zero = || format!("{name}: runtime error: integer divide by zero");
    if name == "modulo" && (matches!(av, Num::F(_)) || matches!(bv, Num::F(_))) {
        let bad = if matches!(av, Num::F(_)) { a } else { b };
        return Err(format!(
            "modulo: unknown type for {} ({})",
            quoted(bad),
            go_type(bad)
        ));
    }
    if name == "minimum" || name == "maximum" {
        // Go keeps the winning operand's own type.
        let (fa, fb) = (as_f(av), as_f(bv));
        let a_wins = if name == "minimum" { fa < fb } else { fa > fb };
        // Integer pairs compare exactly, not through f64.
        let a_wins = match (av, bv) {
            (Num::I(x), Num::I(y)) => {
                if name == "minimum" {
                    x < y
                } else {
                    x > y
                }
            }
            (Num::U(x), Num::U(y)) => {
                if name == "minimum" {
                    x < y
                } else {
                    x > y
                }
            }
            _ => a_wins,
        };
        return Ok(if a_wins { a.clone() } else { b.clone() });
    }
    Ok(match (av, bv) {
        (Num::F(_), _) | (_, Num::F(_)) => {
            let (x, y) = (as_f(av), as_f(bv));
            Value::Float(match name {
                "add" => x + y,
                "subtract" => x - y,
                "multiply" => x * y,
                _ => x / y,
            })
        }
        (Num::U(x), Num::U(y)) => Value::Uint(match name {
            "add" => x.wrapping_add(y),
            "subtract" => x.wrapping_sub(y),
            "multiply" => x.wrapping_mul(y),
            "divide" => x.checked_div(y).ok_or_else(div_zero)?,
            _ => x.checked_rem(y).ok_or_else(div_zero)?,
        }),
        (x, y) => {
            // Mixed int/uint: Go converts the uint to int64.
            let x = match x {
                Num::I(i) => i,
                Num::U(u) => u as i64,
                Num::F(_) => 0,
            };
            let y = match y {
                Num::I(i) => i,
                Num::U(u) => u as i64,
                Num::F(_) => 0,
            };
            Value::Int(match name {
                "add" => x.wrapping_add(y),
                "subtract" => x.wrapping_sub(y),
                "multiply" => x.wrapping_mul(y),
                "divide" => {
                    if y == 0 {
                        return Err(div_zero());
                    }
                    x.wrapping_div(y)
                }
                _ => {
                    if y == 0 {
                        return Err(div_zero());
                    }
                    x.wrapping_rem(y)
                }
            })
        }
    })
}
