//! The secret scanner's matcher (`stint scan`), on any bytes as any kind of file (the first
//! byte picks the path: a workflow, Terraform, a `.env`, a manifest, or plain source).
//! Invariants: nothing panics; every finding is on a line and column the file has; what a
//! finding shows is short and never holds a 40-character secret of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stint_core::scan::{scan, FileKind};

const PATHS: [&str; 6] = [".github/workflows/ci.yml", "infra/main.tf", "app/.env", "k8s/deploy.yaml", "ecs/task.json", "src/lib.rs"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else { return };
    let found = scan(FileKind::of(PATHS[pick as usize % PATHS.len()]), bytes);
    let lines = bytes.split(|b| *b == b'\n').count();
    let b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'/' || b == b'+';
    // What the scanner takes for a secret: 40 base64 characters with both cases and a digit.
    let secrets: Vec<&[u8]> = bytes
        .split(|b| !b64(*b))
        .filter(|run| run.len() == 40 && run.iter().any(u8::is_ascii_uppercase) && run.iter().any(u8::is_ascii_lowercase) && run.iter().any(u8::is_ascii_digit))
        .collect();
    for f in &found {
        assert!(f.line >= 1 && f.line as usize <= lines && f.column >= 1, "{f:?} in {lines} lines");
        let line = bytes.split(|b| *b == b'\n').nth(f.line as usize - 1).unwrap_or_default();
        assert!(f.column as usize <= line.len(), "{f:?}");
        assert!(f.shown.len() <= 200, "{f:?}");
        for s in &secrets {
            assert!(!f.shown.as_bytes().windows(40).any(|w| w == *s), "{f:?} shows a secret");
        }
    }
});
