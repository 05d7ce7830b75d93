//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the same entry
//! points the fuzzers drive, on the stable toolchain: `scripts/fuzz --replay`, run by CI.
//! An input that panics fails the test, named by its file.

use std::path::Path;

#[test]
fn every_committed_fuzz_input_is_handled_without_a_panic() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut total = 0;
    for (target, run) in socketio_exporter::fuzz::TARGETS {
        let dir = corpus.join(target);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{} holds no inputs", dir.display());
        for input in &inputs {
            let data = std::fs::read(input).unwrap();
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                panic!("{} panics {target}", input.display());
            }
        }
        println!("{target}: {} inputs", inputs.len());
        total += inputs.len();
    }
    println!("replayed {total} inputs");
}
