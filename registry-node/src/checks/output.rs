//! Check output: the capped capture buffer and Go-style error texts.
//!
//! Consul captures output in a ring buffer (`armon/circbuf`) of the check's output cap, so it
//! keeps the *last* bytes of a long output; script and docker checks then prefix
//! `Captured <cap> of <total> bytes\n...\n`. Error outputs are Go's `err.Error()` texts, which
//! users match on, so the probes build them with the helpers here.

use std::collections::VecDeque;
use std::io;

/// Keeps the last `cap` bytes written and counts all of them.
#[derive(Debug)]
pub(super) struct RingBuffer {
    cap: usize,
    data: VecDeque<u8>,
    total: u64,
}

impl RingBuffer {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            cap,
            data: VecDeque::with_capacity(cap.min(64 * 1024)),
            total: 0,
        }
    }

    pub(super) fn write(&mut self, bytes: &[u8]) {
        self.total = self.total.saturating_add(bytes.len() as u64);
        let keep = &bytes[bytes.len().saturating_sub(self.cap)..];
        self.data.extend(keep);
        let excess = self.data.len().saturating_sub(self.cap);
        self.data.drain(..excess);
    }

    /// Whether more was written than kept.
    pub(super) fn truncated(&self) -> bool {
        self.total > self.data.len() as u64
    }

    /// The kept bytes as text. A cut may split a UTF-8 sequence: its orphaned tail is dropped.
    pub(super) fn text(&self) -> String {
        let (a, b) = self.data.as_slices();
        let mut bytes = Vec::with_capacity(self.data.len());
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
        let start = if self.truncated() {
            bytes
                .iter()
                .take(3)
                .take_while(|b| (**b & 0xC0) == 0x80)
                .count()
        } else {
            0
        };
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    /// Script/docker output: the text, with Consul's `Captured …` prefix when truncated.
    pub(super) fn captured(&self) -> String {
        let text = self.text();
        if self.truncated() {
            format!(
                "Captured {} of {} bytes\n...\n{}",
                self.cap, self.total, text
            )
        } else {
            text
        }
    }
}

/// Go's text for an OS error: `connection refused`, `no route to host`, `i/o timeout`.
pub(super) fn errno_text(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::TimedOut {
        return "i/o timeout".into();
    }
    let text = e.to_string();
    // Rust appends " (os error N)" and capitalises; Go's syscall texts are bare lower case.
    let bare = match (e.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(at)) => &text[..at],
        _ => text.as_str(),
    };
    let mut chars = bare.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
