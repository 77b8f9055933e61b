//! The scan scenario: `stint scan`'s throughput on a generated source tree of `--scan-mb`
//! megabytes, against a floor of the same walk reading the same files and matching nothing,
//! in alternating rounds on a warm page cache. The tree has credentials planted at known
//! places (one of each rule, again and again) and a corpus of look-alikes: every planted one
//! must be found, and nothing else.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::cmd::scan::walk_with;

/// One file in this many carries a planted credential.
const PLANT_EVERY: usize = 97;
/// Bytes per generated source file.
const FILE_BYTES: usize = 48 * 1024;
const ROUNDS: usize = 3;

/// Made-up credentials in AWS's format, and what each file kind plants.
const ID: &str = "AKIAZ7Q3K5N2XW4R6T8Y";
const SECRET: &str = "kR9v2Lw8Qz4Tn6Yp1Xc3Bm5Hd7Fj0Gs2Ae4Ui6Oq";

/// (file name, contents, the rule it must trip and on which line).
fn plant(kind: usize) -> (&'static str, String, &'static str, u32) {
    match kind % 7 {
        0 => ("settings.py", format!("# settings\nKEY = \"{ID}\"\nSECRET = \"{SECRET}\"\n"), "aws-access-key-with-secret", 2),
        1 => (".env", format!("PORT=8080\nAWS_SECRET_ACCESS_KEY={SECRET}\n"), "dotenv-aws-keys", 2),
        2 => ("iam.tf", "resource \"aws_iam_access_key\" \"ci\" {\n  user = \"ci\"\n}\n".into(), "terraform-access-key", 1),
        3 => ("deploy.yaml", "env:\n  - name: AWS_ACCESS_KEY_ID\n    valueFrom:\n      secretKeyRef: {name: aws}\n".into(), "container-env-aws-keys", 2),
        4 => ("id_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n".into(), "private-key", 1),
        5 => ("notes.txt", format!("rotate {ID} soon\n"), "aws-access-key", 1),
        _ => ("task.json", "{\"environment\": [{\"name\": \"AWS_ACCESS_KEY_ID\", \"value\": \"x\"}]}\n".into(), "container-env-aws-keys", 1),
    }
}

/// Look-alikes written beside the planted files: none may be reported.
const LOOK_ALIKES: &str = "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n\
    aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n\
    XAKIAZ7Q3K5N2XW4R6T8Y AKIAZ7Q3K5N2XW4R6T8YZ akiaz7q3k5n2xw4r6t8y AKIA_Z7Q3K5N2XW4R6T8\n\
    commit da39a3ee5e6b4b0d3255bfef95601890afd80709\n\
    -----BEGIN PUBLIC KEY-----\n-----BEGIN CERTIFICATE-----\n\
    set AWS_ACCESS_KEY_ID in your shell; secrets.AWS_ACCESS_KEY_ID outside a workflow\n\
    data \"aws_iam_access_keys\" \"all\" {}\n";

/// A deterministic stream of source-like lines (xorshift), so every run reads the same tree.
struct Text(u64);

impl Text {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn file(&mut self, bytes: usize) -> String {
        const WORDS: [&str; 16] = [
            "let",
            "value",
            "request",
            "config",
            "handler",
            "return",
            "match",
            "self",
            "buffer",
            "client",
            "Result",
            "String",
            "MAX_RETRIES",
            "token",
            "Vec",
            "await",
        ];
        let mut out = String::with_capacity(bytes + 128);
        while out.len() < bytes {
            let indent = (self.next() % 4) as usize * 4;
            out.extend(std::iter::repeat_n(' ', indent));
            for _ in 0..(3 + self.next() % 8) {
                let r = self.next();
                match r % 9 {
                    0 => out.push_str(&format!("{:x}", r >> 8)),
                    1 => out.push_str(&format!("\"{}_{}\"", WORDS[(r >> 4) as usize % 16], r % 1000)),
                    _ => out.push_str(WORDS[(r >> 4) as usize % 16]),
                }
                out.push(if r.is_multiple_of(5) { '.' } else { ' ' });
            }
            out.push_str(";\n");
        }
        out
    }
}

/// Writes the tree; returns the (path, rule, line) of every planted credential.
fn generate(root: &Path, megabytes: u64) -> Result<BTreeSet<(String, String, u32)>> {
    let files = (megabytes as usize * 1_000_000).div_ceil(FILE_BYTES);
    let mut text = Text(0x5eed_cafe_f00d_d00d);
    let mut planted = BTreeSet::new();
    for i in 0..files {
        let dir = root.join(format!("src/m{:03}/d{:02}", i / 1000, (i / 50) % 20));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("f{i}.rs")), text.file(FILE_BYTES))?;
        if i.is_multiple_of(PLANT_EVERY) {
            let (name, contents, rule, line) = plant(i / PLANT_EVERY);
            let sub = dir.join(format!("p{i}"));
            std::fs::create_dir_all(&sub)?;
            std::fs::write(sub.join(name), contents)?;
            std::fs::write(sub.join("look-alikes.md"), LOOK_ALIKES)?;
            let shown = sub.join(name).strip_prefix(root)?.to_string_lossy().into_owned();
            planted.insert((shown, rule.to_owned(), line));
        }
    }
    Ok(planted)
}

pub fn run(dir: Option<PathBuf>, megabytes: u64) -> Result<Value> {
    let root = dir.unwrap_or_else(|| std::env::temp_dir().join(format!("stint-bench-scan-{}", std::process::id())));
    if root.exists() {
        bail!("{} exists; give --data a new directory", root.display());
    }
    eprintln!("bench: writing a {megabytes} MB source tree to {}…", root.display());
    let planted = generate(&root, megabytes)?;
    let here = std::env::current_dir()?;
    std::env::set_current_dir(&root)?;
    let paths = [PathBuf::from(".")];
    let measure = |floor: bool| -> Result<(f64, u64, Vec<crate::cmd::scan::Found>)> {
        let start = Instant::now();
        let (found, totals) = if floor { walk_with(&paths, true, false, &|_, _| Vec::new())? } else { crate::cmd::scan::scan_tree(&paths, true, false)? };
        Ok((totals.bytes as f64 / 1e6 / start.elapsed().as_secs_f64(), totals.bytes, found))
    };
    // A first walk brings the tree into the page cache: both then read from memory.
    measure(true)?;
    let (mut floors, mut scans) = (Vec::new(), Vec::new());
    let mut last = Vec::new();
    let mut bytes = 0;
    for _ in 0..ROUNDS {
        floors.push(measure(true)?.0);
        let (mbs, b, found) = measure(false)?;
        scans.push(mbs);
        bytes = b;
        last = found;
    }
    std::env::set_current_dir(here)?;
    let got: BTreeSet<(String, String, u32)> = last.iter().map(|f| (f.path.clone(), f.finding.rule.id().to_owned(), f.finding.line)).collect();
    let missed: Vec<_> = planted.difference(&got).cloned().collect();
    let extra: Vec<_> = got.difference(&planted).cloned().collect();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (floor, scan) = (median(&mut floors), median(&mut scans));
    let _ = std::fs::remove_dir_all(&root);
    Ok(json!({
        "bytes": bytes,
        "rounds": ROUNDS,
        "floor_mb_per_s": floor,
        "scan_mb_per_s": scan,
        "scan_over_floor": scan / floor,
        "planted": planted.len(),
        "found": got.len(),
        "missed": missed,
        "false_positives": extra,
    }))
}
