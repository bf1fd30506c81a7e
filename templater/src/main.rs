//! Placeholder: the templater issue fills this crate.
fn main() {
    eprintln!("templater: not implemented yet");
    std::process::exit(1);
}
