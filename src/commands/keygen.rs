//! `dmarcpipe keygen`: a new age X25519 identity, in the format of `age-keygen`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{Context, Result};

use crate::cli::KeygenArgs;
use crate::exit;

pub fn run(args: KeygenArgs) -> Result<u8> {
    let (identity, recipient) = dmarcpipe_store::seal::generate_identity();
    match &args.output {
        Some(path) => {
            // create_new: an identity is never overwritten (samples sealed to it would be lost).
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot create the identity file {}", path.display()))?;
            file.write_all(identity.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write the identity file {}", path.display()))?;
            println!("{recipient}");
            eprintln!("Public key: {recipient}");
            eprintln!(
                "Identity written to {}: keep it off the ingesting host; put the public key in [forensic] recipients.",
                path.display()
            );
        }
        None => {
            eprintln!("Public key: {recipient}");
            std::io::stdout().lock().write_all(identity.as_bytes())?;
        }
    }
    Ok(exit::OK)
}
