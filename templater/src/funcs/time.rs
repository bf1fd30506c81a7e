//! `timestamp` and a Go `time.Format` layout formatter for UTC times.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{Args, FuncResult, string};

/// RFC 3339, `timestamp`'s default layout.
const RFC3339: &str = "2006-01-02T15:04:05Z07:00";

/// `timestamp`, `timestamp "unix"`, `timestamp "<go layout>"` (UTC).
pub(super) fn timestamp(a: &Args<'_>, now: SystemTime) -> FuncResult {
    let layout = match a.len() {
        0 => RFC3339,
        1 => a.str(0)?,
        n => {
            return Err(format!(
                "timestamp: wrong number of arguments, expected 0 or 1, but got {n}"
            ));
        }
    };
    let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    if layout == "unix" {
        return Ok(string(d.as_secs().to_string()));
    }
    Ok(string(go_time_format(
        d.as_secs() as i64,
        d.subsec_nanos(),
        layout,
    )))
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Formats a UTC instant with a Go reference-time layout
/// (`Mon Jan 2 15:04:05 MST 2006`). Supports the standard chunks; anything
/// else is copied verbatim, as Go does.
pub fn go_time_format(secs: i64, nanos: u32, layout: &str) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (year, month, day) = civil(days);
    let (hour, min, sec) = (sod / 3600, (sod / 60) % 60, sod % 60);
    let weekday = (days + 4).rem_euclid(7) as usize;
    let yday = days - civil_days(year, 1, 1) + 1;
    let mut out = String::new();
    let mut rest = layout;
    // Longest chunks first where prefixes overlap.
    const CHUNKS: &[&str] = &[
        "January",
        "Monday",
        "2006",
        "-07:00:00",
        "-0700",
        "-07:00",
        "-07",
        "Z07:00:00",
        "Z0700",
        "Z07:00",
        "Z07",
        "Jan",
        "Mon",
        "MST",
        "002",
        "__2",
        "_2",
        "01",
        "02",
        "03",
        "04",
        "05",
        "06",
        "15",
        "PM",
        "pm",
        "1",
        "2",
        "3",
        "4",
        "5",
    ];
    while !rest.is_empty() {
        // Fractional seconds: .000 / ,000 / .999 (trailing zeros trimmed).
        if let Some(c) = rest.chars().next()
            && (c == '.' || c == ',')
        {
            let digits = rest[1..]
                .bytes()
                .take_while(|b| *b == b'0' || *b == b'9')
                .count();
            let kind = rest.as_bytes().get(1).copied();
            let next_is_digit = rest
                .as_bytes()
                .get(1 + digits)
                .is_some_and(u8::is_ascii_digit);
            if digits > 0 && !next_is_digit && rest[1..1 + digits].bytes().all(|b| Some(b) == kind)
            {
                let frac = format!("{nanos:09}");
                let frac = &frac[..digits.min(9)];
                if kind == Some(b'0') {
                    out.push(c);
                    out.push_str(frac);
                } else {
                    let t = frac.trim_end_matches('0');
                    if !t.is_empty() {
                        out.push(c);
                        out.push_str(t);
                    }
                }
                rest = &rest[1 + digits..];
                continue;
            }
        }
        let chunk = CHUNKS.iter().find(|c| rest.starts_with(**c));
        let Some(chunk) = chunk else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        };
        let h12 = if hour % 12 == 0 { 12 } else { hour % 12 };
        let s = match *chunk {
            "January" => MONTHS[month as usize - 1].to_string(),
            "Jan" => MONTHS[month as usize - 1][..3].to_string(),
            "Monday" => DAYS[weekday].to_string(),
            "Mon" => DAYS[weekday][..3].to_string(),
            "MST" => "UTC".into(),
            "2006" => format!("{year:04}"),
            "06" => format!("{:02}", year.rem_euclid(100)),
            "01" => format!("{month:02}"),
            "1" => month.to_string(),
            "02" => format!("{day:02}"),
            "_2" => format!("{day:>2}"),
            "2" => day.to_string(),
            "002" => format!("{yday:03}"),
            "__2" => format!("{yday:>3}"),
            "15" => format!("{hour:02}"),
            "03" => format!("{h12:02}"),
            "3" => h12.to_string(),
            "04" => format!("{min:02}"),
            "4" => min.to_string(),
            "05" => format!("{sec:02}"),
            "5" => sec.to_string(),
            "PM" => if hour >= 12 { "PM" } else { "AM" }.into(),
            "pm" => if hour >= 12 { "pm" } else { "am" }.into(),
            z if z.starts_with('Z') => "Z".into(),
            "-0700" => "+0000".into(),
            "-07:00" => "+00:00".into(),
            "-07" => "+00".into(),
            "-07:00:00" => "+00:00:00".into(),
            other => other.to_string(),
        };
        out.push_str(&s);
        rest = &rest[chunk.len()..];
    }
    out
}

fn civil_days(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_go_layouts() {
        // 2009-11-10T23:04:05.123Z, a Tuesday, day 314.
        let t = 1_257_894_245;
        assert_eq!(
            go_time_format(t, 123_000_000, RFC3339),
            "2009-11-10T23:04:05Z"
        );
        assert_eq!(
            go_time_format(t, 0, "Mon Jan _2 15:04:05 MST 2006"),
            "Tue Nov 10 23:04:05 UTC 2009"
        );
        assert_eq!(
            go_time_format(t, 123_000_000, "2006-01-02 03:04:05.000 PM"),
            "2009-11-10 11:04:05.123 PM"
        );
        assert_eq!(go_time_format(t, 120_000_000, "05.999"), "05.12");
        assert_eq!(go_time_format(t, 0, "002 -0700"), "314 +0000");
        assert_eq!(go_time_format(0, 0, "2006-01-02"), "1970-01-01");
    }
}
