//! `registry-node keygen`: print a new gossip encryption key (32 random bytes,
//! base64), as `consul keygen`. Local: no agent is contacted.

/// Arguments of `keygen` (none).
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {}

/// Runs `keygen`.
pub async fn run(_args: KeygenArgs) -> anyhow::Result<i32> {
    println!("{}", crate::gossip::keygen());
    Ok(0)
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn key_is_32_bytes_of_base64() {
        let key = crate::gossip::keygen();
        assert_eq!(STANDARD.decode(key).unwrap().len(), 32);
    }
}
