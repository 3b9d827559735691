//! Random bytes, truncated and mutated manifests never panic the parser, the defaulter or
//! the validator: each input either parses or gives an error, and whatever parses can be
//! defaulted, validated and serialised.

use std::path::Path;

use rafter_proto::{apply_defaults, parse_manifests, validate};

/// A deterministic generator, so a failure reproduces from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn seed_manifests() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/tests/data/seeds");
    let mut texts: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("readable manifest"))
        .collect();
    texts.sort();
    assert!(
        texts.len() > 40,
        "expected the seeds' manifests in {}",
        dir.display()
    );
    texts
}

/// Everything that follows a parse: nothing here may panic either.
fn exercise(text: &str) -> usize {
    let mut parsed = 0;
    for result in parse_manifests(text, "fuzz") {
        if let Ok(document) = result {
            let mut object = document.object;
            object.set_type_meta();
            apply_defaults(&mut object);
            let _ = validate(&object);
            let _ = object.to_yaml();
            parsed += 1;
        } else if let Err(e) = result {
            assert!(
                !e.message.is_empty(),
                "an error without a message for {text:?}"
            );
        }
    }
    parsed
}

const TOKENS: &[&str] = &[
    "\n",
    ": ",
    "- ",
    "---\n",
    "  ",
    "\t",
    "{",
    "}",
    "[",
    "]",
    "\"",
    "'",
    "#",
    "&a ",
    "*a",
    "!!str ",
    "~",
    "null",
    "-1",
    "99999999999999999999",
    "1e400",
    "%",
    "|",
    ">",
    "kind: List\n",
    "items:\n",
    "\u{0}",
    "\u{feff}",
];

#[test]
fn mutated_seed_manifests_never_panic() {
    let seeds = seed_manifests();
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut parsed_any = 0;
    for round in 0..4000 {
        let base = &seeds[rng.below(seeds.len())];
        let mut bytes = base.as_bytes().to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len().max(1));
            match rng.below(4) {
                0 => {
                    bytes.truncate(at);
                }
                1 => {
                    let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                    bytes.splice(at..at, token.iter().copied());
                }
                2 if !bytes.is_empty() => {
                    let end = (at + rng.below(16)).min(bytes.len());
                    bytes.drain(at..end);
                }
                _ if !bytes.is_empty() => bytes[at] = (rng.next() & 0x7f) as u8,
                _ => {}
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let result = std::panic::catch_unwind(|| exercise(&text));
        match result {
            Ok(n) => parsed_any += n,
            Err(_) => panic!("round {round} panicked on:\n{text}"),
        }
    }
    // The mutations must leave many inputs parseable, or the test exercises only the YAML layer.
    assert!(
        parsed_any > 300,
        "only {parsed_any} mutated documents parsed"
    );
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0xB17E_5000_0000_0001);
    for round in 0..3000 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let text = String::from_utf8_lossy(&bytes);
        if std::panic::catch_unwind(|| exercise(&text)).is_err() {
            panic!("round {round} panicked on {bytes:?}");
        }
    }
}

#[test]
fn every_truncation_of_every_seed_manifest_never_panics() {
    for text in seed_manifests() {
        for end in (0..text.len()).filter(|i| text.is_char_boundary(*i)) {
            exercise(&text[..end]);
        }
    }
}
