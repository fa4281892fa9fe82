//! Mutation fuzzing of the whole unpack-and-parse path, on the stable toolchain: samples from
//! `samples/` (aggregate and TLS reports) are damaged at random (bit flips, cuts, insertions, repeats, and mutations of
//! the XML inside gzip before recompressing) and inspected. Nothing may panic, hang or
//! allocate without bound; every input must end in a verdict.
//!
//! `make fuzz` runs the long version (`FUZZ_SECONDS`, default 60); the short one runs with
//! the other tests.

use std::path::Path;
use std::time::{Duration, Instant};

use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::envelope::{Envelope, Origin, Payload};
use dmarcpipe_ingest::inspect::inspect;
use dmarcpipe_ingest::testkit::{Rng, gzip};

fn corpus() -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples");
    let mut stack = vec![samples.join("aggregate"), samples.join("tlsrpt")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("samples/ is readable") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if !path.to_string_lossy().ends_with(".expected.json") {
                let bytes = std::fs::read(&path).expect("readable");
                // The bombs are tested on their own; mutating them only burns time.
                if bytes.len() < 64 * 1024 && !path.to_string_lossy().contains("bomb") {
                    files.push(bytes);
                }
            }
        }
    }
    files.sort();
    files
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut data = input.to_vec();
    // Structure-aware: damage what is inside gzip and pack it again.
    if data.starts_with(&[0x1f, 0x8b]) && rng.below(2) == 0 {
        use std::io::Read;
        #[allow(clippy::disallowed_types)] // test input, not untrusted
        let mut decoder = flate2::read::MultiGzDecoder::new(&data[..]);
        let mut inner = Vec::new();
        if decoder.read_to_end(&mut inner).is_ok() {
            return gzip(&mutate(rng, &inner));
        }
    }
    for _ in 0..=rng.below(4) {
        if data.is_empty() {
            data.push(b'<');
        }
        let at = rng.below(data.len() as u64) as usize;
        match rng.below(6) {
            0 => data[at] ^= 1 << rng.below(8),
            1 => data.truncate(at),
            2 => data.insert(at, [b'<', b'>', b'&', b'/', 0, 0xff, b'"', b'\n'][rng.below(8) as usize]),
            3 => {
                let end = (at + 1 + rng.below(64) as usize).min(data.len());
                let chunk = data[at..end].to_vec();
                data.splice(at..at, chunk);
            }
            4 => {
                let end = (at + 1 + rng.below(16) as usize).min(data.len());
                data.drain(at..end);
            }
            _ => data[at] = rng.below(256) as u8,
        }
    }
    data
}

fn fuzz(deadline: Duration, seed: u64) -> u64 {
    let corpus = corpus();
    assert!(!corpus.is_empty());
    let limits = Limits { max_decompressed_bytes: 64 << 20, ..Limits::default() };
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut runs = 0;
    while started.elapsed() < deadline {
        let pick = rng.below(corpus.len() as u64) as usize;
        let input = mutate(&mut rng, &corpus[pick]);
        let envelope = Envelope::new(Origin::Stdin, Payload::Bytes(input));
        let _ = inspect(&envelope, &limits);
        runs += 1;
    }
    runs
}

#[test]
fn mutated_samples_never_crash_the_parsers() {
    let runs = fuzz(Duration::from_secs(3), 0x5EED);
    assert!(runs > 100, "{runs} runs");
}

#[test]
#[ignore = "long; run with `make fuzz`"]
fn fuzz_for_a_while() {
    let seconds = std::env::var("FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let seed = std::env::var("FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64 | 1)
    });
    eprintln!("fuzzing for {seconds}s with FUZZ_SEED={seed}");
    let runs = fuzz(Duration::from_secs(seconds), seed);
    eprintln!("{runs} mutated inputs, no crash");
}
