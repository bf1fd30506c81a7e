//! Consul-compatible text output shared by the client subcommands: the
//! `columnize` tables of `members` and `catalog nodes`, the `tabwriter` blocks
//! of `kv get -detailed` and `catalog services -tags`, Go's indented JSON, and
//! the one-line error convention (`Error ...` on stderr, exit code 1).

use std::collections::BTreeMap;
use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use registry_api::KVPair;
use registry_api::client::ClientError;

/// Gap between columns of a [`columnize`] table (ryanuber/columnize's default glue).
const COLUMN_GLUE: &str = "  ";
/// Padding after the widest cell of a [`tabwrite`] column (Consul uses
/// `tabwriter.NewWriter(w, 0, 2, 6, ' ', 0)`).
const TAB_PADDING: usize = 6;

/// Formats rows as Consul's `columnize.Format` does: cells are trimmed, every
/// column but a row's last is left-aligned and padded to the column's widest
/// cell (counted in characters), columns are joined by two spaces. No trailing
/// newline.
pub fn columnize(rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| r.iter().map(|c| c.trim()).collect())
        .collect();
    let mut widths: Vec<usize> = Vec::new();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            let len = cell.chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(len),
                None => widths.push(len),
            }
        }
    }
    let mut lines = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(COLUMN_GLUE);
            }
        }
        lines.push(line);
    }
    lines.join("\n")
}

/// Formats `label<TAB>value` lines as Go's `tabwriter` (minwidth 0, padding 6,
/// space padding) does: labels are padded to the longest label plus 6. Values
/// are written as they are; lines are joined by `\n`, no trailing newline.
pub fn tabwrite(rows: &[(&str, &[u8])]) -> Vec<u8> {
    let width = rows
        .iter()
        .map(|(label, _)| label.chars().count())
        .max()
        .unwrap_or(0)
        + TAB_PADDING;
    let mut out = Vec::new();
    for (i, (label, value)) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(label.as_bytes());
        out.extend(std::iter::repeat_n(b' ', width - label.chars().count()));
        out.extend_from_slice(value);
    }
    out
}

/// The `kv get -detailed` block of one entry (no trailing newline). `Session`
/// shows `-` when the key is not locked; `base64` encodes the value.
pub fn kv_detailed(pair: &KVPair, base64: bool) -> Vec<u8> {
    let value = pair.value.as_deref().unwrap_or_default();
    let value = if base64 {
        STANDARD.encode(value).into_bytes()
    } else {
        value.to_vec()
    };
    let session = pair
        .session
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("-");
    let (create, flags) = (pair.create_index.to_string(), pair.flags.to_string());
    let (lock, modify) = (pair.lock_index.to_string(), pair.modify_index.to_string());
    tabwrite(&[
        ("CreateIndex", create.as_bytes()),
        ("Flags", flags.as_bytes()),
        ("Key", pair.key.as_bytes()),
        ("LockIndex", lock.as_bytes()),
        ("ModifyIndex", modify.as_bytes()),
        ("Session", session.as_bytes()),
        ("Value", &value),
    ])
}

/// `k1=v1<joiner>k2=v2` sorted by key (Consul's `mapToKV`).
pub fn map_to_kv(map: &BTreeMap<String, String>, joiner: &str) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(joiner)
}

/// Writes bytes and a newline to stdout (values may not be UTF-8). A closed pipe
/// (`| head`) is not an error worth reporting.
pub fn print_bytes(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes).and_then(|()| out.write_all(b"\n"));
}

/// Prints an error to stderr as one line (multi-line messages such as regex
/// errors are joined) and returns exit code 1.
pub fn fail(message: impl AsRef<str>) -> i32 {
    eprintln!("{}", one_line(message.as_ref()));
    1
}

/// The non-blank lines of `text`, trimmed and joined by a space.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Prints `<context>: <error>` and returns 1; an unreachable agent is reported
/// on its own, since that message already starts with `Error connecting`.
pub fn fail_client(context: &str, err: &ClientError) -> i32 {
    if err.is_connection_error() {
        fail(err.to_string())
    } else {
        fail(format!("{context}: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn columnize_pads_all_but_the_last_column() {
        let table = columnize(&[
            row(&["Node", "Address", "Status"]),
            row(&["server-1", "10.0.0.1:8301", "alive"]),
            row(&["c", "10.0.0.22:8301", "failed"]),
        ]);
        let expected = "Node      Address         Status\n\
                        server-1  10.0.0.1:8301   alive\n\
                        c         10.0.0.22:8301  failed";
        assert_eq!(table, expected);
    }

    #[test]
    fn columnize_keeps_empty_trailing_cells_and_trims() {
        let table = columnize(&[row(&["a", " bb ", "c"]), row(&["dddd", "", ""])]);
        assert_eq!(table, "a     bb  c\ndddd      ");
    }

    #[test]
    fn kv_detailed_matches_consul() {
        let pair = KVPair {
            key: "redis/config/connections".into(),
            value: Some(b"5".to_vec()),
            create_index: 336,
            modify_index: 336,
            ..KVPair::default()
        };
        let text = String::from_utf8(kv_detailed(&pair, false)).unwrap();
        let expected = "CreateIndex      336\n\
                        Flags            0\n\
                        Key              redis/config/connections\n\
                        LockIndex        0\n\
                        ModifyIndex      336\n\
                        Session          -\n\
                        Value            5";
        assert_eq!(text, expected);
        let text = String::from_utf8(kv_detailed(&pair, true)).unwrap();
        assert!(text.ends_with("Value            NQ=="), "{text}");
    }

    #[test]
    fn tabwrite_uses_longest_label_plus_six() {
        let out = tabwrite(&[("web", b"v1,v2"), ("consul", b"")]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "web         v1,v2\nconsul      "
        );
    }

    #[test]
    fn errors_fit_on_one_line() {
        assert_eq!(
            one_line("a: b\n    (x\n    ^\nerror: c\n"),
            "a: b (x ^ error: c"
        );
    }

    #[test]
    fn map_to_kv_sorts() {
        let map: BTreeMap<String, String> = [("wan", "1.1.1.1"), ("lan", "10.0.0.1")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        assert_eq!(map_to_kv(&map, ", "), "lan=10.0.0.1, wan=1.1.1.1");
    }
}
