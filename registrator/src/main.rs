//! Placeholder: the registrator issue fills this crate.
fn main() {
    eprintln!("registrator: not implemented yet");
    std::process::exit(1);
}
